"""End-to-end fixtures: a fresh PostgreSQL database and a real multi-worker gunicorn on loopback.

Needs TEST_DATABASE_URL=postgresql+psycopg://... (its server is used; the
fixtures create and drop their own uniquely named databases). Every test here
is skipped, saying why, when that is unset or the server does not answer
(failed instead where REQUIRE_POSTGRES_TESTS is set, as in CI).

Two live-server tests of operations, `test_metrics_multiprocess.py` and
`test_openapi_fuzz.py`, run on the suite's own database instead (SQLite, or
PostgreSQL with TEST_DATABASE_URL, skipped the same way when it is unreachable):
a multi-worker server and the fuzzer must hold on both.
"""

import os

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.service import PostgresServer, live_service
from tests.skips import skip_or_fail


@pytest.fixture(scope="session")
def postgres_server():
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        skip_or_fail("e2e tests need PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://user@127.0.0.1:5432/db")
    if not url.startswith("postgresql"):
        skip_or_fail(f"e2e tests need PostgreSQL; TEST_DATABASE_URL is {make_url(url).get_backend_name()}")
    server = PostgresServer(make_url(url))
    why = server.reachable()
    if why is not None:
        server.dispose()
        skip_or_fail(f"e2e tests need PostgreSQL, and {make_url(url).host}:{make_url(url).port} is not reachable: "
                     f"{why}")
    yield server
    server.dispose()


@pytest.fixture(scope="module")
def live(postgres_server, tmp_path_factory):
    """One service shared by a module's tests; each test makes its own users and carts."""
    with live_service(postgres_server, tmp_path_factory.mktemp("e2e")) as service:
        yield service


@pytest.fixture
def fresh_live(postgres_server, tmp_path):
    """A service of the test's own, for tests that hurt it (killed workers, restarted database)."""
    with live_service(postgres_server, tmp_path) as service:
        yield service
