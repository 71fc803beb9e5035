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
