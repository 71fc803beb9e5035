"""tests/skips.py: a skip for a missing PostgreSQL, wrk or schemathesis, and a failure where CI requires them."""

from pathlib import Path

import pytest

from tests.skips import REQUIRE_ENV, skip_or_fail

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_without_the_requirement_a_missing_tool_skips_saying_what_is_missing(monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)

    with pytest.raises(pytest.skip.Exception, match="wrk is missing"):
        skip_or_fail("wrk is missing")


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_where_the_requirement_is_set_a_missing_tool_fails_with_the_same_words(monkeypatch, value):
    monkeypatch.setenv(REQUIRE_ENV, value)

    with pytest.raises(pytest.fail.Exception, match="^wrk is missing$"):
        skip_or_fail("wrk is missing")


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_a_requirement_switched_off_still_skips(monkeypatch, value):
    monkeypatch.setenv(REQUIRE_ENV, value)

    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("wrk is missing")


def test_ci_requires_them():
    assert f"export {REQUIRE_ENV}=1" in CI_RUN.read_text().splitlines()


def test_ci_runs_the_suite_on_sqlite_too_without_the_requirement():
    assert f"env -u TEST_DATABASE_URL -u {REQUIRE_ENV} make test" in CI_RUN.read_text().splitlines()


def test_a_suite_pointed_at_an_unreachable_postgresql_skips_every_database_test_with_one_clear_reason(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a free loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TEST_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"}
    env.pop(REQUIRE_ENV, None)
    root = Path(__file__).resolve().parents[2]

    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/integration/test_services.py::test_the_service_list_is_empty_before_any_service_exists"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)

    assert "1 skipped" in run.stdout, run.stdout + run.stderr
    assert f"TEST_DATABASE_URL names 127.0.0.1:{port}, which is not reachable" in run.stdout
