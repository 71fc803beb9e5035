"""Fixtures: one migrated database per run (SQLite, or PostgreSQL via TEST_DATABASE_URL),
emptied before every test; `app`, `client`, `runner`, `clock`.

`app` has the offline gateway; a test marked `both_gateways` runs once with
it and once with GATEWAY=razorpay against the local sandbox
(tests/razorpay_sandbox.py), unchanged: the builders sign and send as the
app's gateway does (tests/builders.py). A module may set its own
`gateway_name` fixture to run all its tests with one of them."""

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.engine import make_url

from persistence.db import db
from tests.clock import FakeClock
from tests.documented_client import DocumentedClient
from tests.gateways import ScriptedGateway
from tests.razorpay_sandbox import running
from tests.skips import skip_or_fail
from web import create_app
from web.cli import init_db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
FAST_HASH = "pbkdf2:sha256:1000"  # scrypt costs ~120 ms a user; tests register many


GATEWAYS = ("offline", "razorpay")
RAZORPAY_KEYS = {"RAZORPAY_KEY_ID": "rzp_test_key", "RAZORPAY_KEY_SECRET": "rzp-test-key-secret",
                 "RAZORPAY_WEBHOOK_SECRET": "rzp-test-webhook-secret"}
both_gateways = pytest.mark.both_gateways


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_gateways") is not None:
        metafunc.parametrize("gateway_name", GATEWAYS, indirect=True)


def on_postgres() -> bool:
    return bool(TEST_DATABASE_URL)


POSTGRES_ONLY = "needs PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://... (.ci/run does)"
# Skipped without PostgreSQL, saying so; failed instead where REQUIRE_POSTGRES_TESTS is set (see tests/skips.py).
requires_postgres = pytest.mark.postgres_only


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres_only") is not None and not on_postgres():
        skip_or_fail(POSTGRES_ONLY)


def _ensure_postgres_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}):
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if TEST_DATABASE_URL:
        try:
            _ensure_postgres_database(TEST_DATABASE_URL)
        except OperationalError as exc:  # one clear reason, not the same connection traceback for every test
            target = make_url(TEST_DATABASE_URL)
            skip_or_fail(f"TEST_DATABASE_URL names {target.host}:{target.port}, which is not reachable: "
                         f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
        url = TEST_DATABASE_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    app = create_app({"DATABASE_URL": url, "SCHEDULER_ENABLED": False})
    with app.app_context():
        init_db()
        db.engine.dispose()
    return url


def empty_all_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            db.session.execute(text(f"DELETE FROM {name}"))
    db.session.commit()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(database_url, clock):
    """Build an app on the test database; keyword overrides go into its config."""
    apps = []

    def build(**overrides):
        config = {"DATABASE_URL": database_url, "SCHEDULER_ENABLED": False, "CLOCK": clock,
                  "PASSWORD_HASH_METHOD": FAST_HASH, "LOG_FORMAT": "json", **overrides}
        app = create_app(config)
        app.config["TESTING"] = True
        app.test_client_class = DocumentedClient
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def razorpay_server():
    """The local Razorpay, serving on a free port for the whole run."""
    with running(RAZORPAY_KEYS["RAZORPAY_KEY_ID"], RAZORPAY_KEYS["RAZORPAY_KEY_SECRET"],
                 RAZORPAY_KEYS["RAZORPAY_WEBHOOK_SECRET"]) as server:
        yield server


@pytest.fixture
def app_config() -> dict:
    """What the `app` fixture's app is built with; a module overrides it (its gateway, its limits)."""
    return {}


@pytest.fixture
def gateway() -> ScriptedGateway:
    """A gateway with a memory and faults on demand, for the modules whose `app_config` injects it."""
    return ScriptedGateway()


@pytest.fixture
def gateway_name(request) -> str:
    """The gateway of `app`: offline, unless the test runs with each (`both_gateways`)."""
    return getattr(request, "param", "offline")


def razorpay_settings(server) -> dict:
    """An app's settings for GATEWAY=razorpay against the sandbox, emptied."""
    server.sandbox.reset()
    return {"GATEWAY": "razorpay", "RAZORPAY_BASE_URL": server.url, **RAZORPAY_KEYS}


@pytest.fixture
def app(make_app, app_config, gateway_name, request):
    settings = dict(app_config)
    if gateway_name == "razorpay":
        settings.update(razorpay_settings(request.getfixturevalue("razorpay_server")))
    app = make_app(**settings)
    with app.app_context():
        empty_all_tables()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
