"""The migrations build exactly the schema the models describe."""

import hashlib
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config
from sqlalchemy import Boolean, column, create_engine, insert, inspect, select, table, text
from sqlalchemy.engine import make_url
from flask_migrate import upgrade
from sqlalchemy.pool import NullPool

from persistence.db import MIGRATIONS_DIR, db
from persistence.models import ApiToken
from persistence.types import UTCDateTime
from tests.clock import FakeClock
from web import create_app


def test_autogenerate_finds_no_difference_between_models_and_migrations(app):
    with app.app_context():
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "compare_server_default": True})
            diff = compare_metadata(context, db.metadata)

    assert diff == []


def test_flask_db_check_reports_no_pending_changes(app, runner):
    result = runner.invoke(args=["db", "check"])

    assert result.exit_code == 0, result.output


def test_the_database_is_at_the_single_head_revision(app):
    script = ScriptDirectory.from_config(_alembic_config())
    with app.app_context():
        with db.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()

    assert len(script.get_heads()) == 1
    assert current == tuple(script.get_heads())


def test_the_invariant_constraints_exist_in_the_database(app):
    with app.app_context():
        inspector = inspect(db.engine)
        unique = {table: {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
                  for table in ("bookings", "payments")}
        payment_indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("payments")}
        payment_pk = inspector.get_pk_constraint("payments")["constrained_columns"]

    assert {("cart_id",), ("transaction_id",)} <= unique["bookings"]
    assert ("provider_order_id",) in unique["payments"]
    assert ("status", "created_at") in payment_indexes
    assert payment_pk == ["transaction_id"]


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    return config


def test_the_comparison_would_notice_a_model_the_migrations_lack(app):
    from sqlalchemy import Column, Integer, MetaData

    changed = MetaData(naming_convention=db.metadata.naming_convention)
    for table in db.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["carts"].append_column(Column("loyalty_points", Integer, nullable=True))
    with app.app_context():
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), changed)

    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "carts", "loyalty_points")]


def _migration(name: str):
    import importlib

    return importlib.import_module(f"persistence.migrations.versions.{name}")


def _index_definition(name: str) -> str:
    """The CREATE INDEX statement the database holds for index `name`."""
    from sqlalchemy import text

    query = ("SELECT indexdef FROM pg_indexes WHERE indexname = :n" if db.engine.dialect.name == "postgresql"
             else "SELECT sql FROM sqlite_master WHERE name = :n")
    with db.engine.connect() as conn:
        return conn.scalar(text(query), {"n": name})


def test_the_payments_age_index_holds_open_payments_only_as_the_machine_defines_them(app):
    from persistence.models import open_payments_only

    with app.app_context():
        indexed_columns = {tuple(i["column_names"]) for i in inspect(db.engine).get_indexes("payments")}
        definition = _index_definition("ix_payments_status_created_at")

    # The migration wrote the predicate out; it must still say what the machine calls open.
    assert str(_migration("0003_lean_payment_indexes").OPEN_PAYMENTS) == str(open_payments_only())
    assert "WHERE" in definition and "INITIATED" in definition and "PENDING" in definition
    assert ("user_id",) not in indexed_columns


def test_one_live_line_per_service_is_unique_among_live_items_only(app):
    from persistence.models import live_items_only

    with app.app_context():
        live = {i["name"]: i for i in inspect(db.engine).get_indexes("cart_items")}["uq_cart_items_live_service"]
        unique_constraints = inspect(db.engine).get_unique_constraints("cart_items")
        definition = _index_definition("uq_cart_items_live_service")

    assert str(_migration("0004_cart_items_kept_when_removed").LIVE_ITEMS) == str(live_items_only())
    assert (live["column_names"], bool(live["unique"])) == (["cart_id", "service_id"], True)
    assert "removed_at IS NULL" in definition
    assert unique_constraints == []  # the old all-rows constraint would refuse a service added again


@contextmanager
def scratch_database(database_url: str, tmp_path):
    """An empty database of the suite's kind (SQLite or PostgreSQL), dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    target = make_url(database_url)
    name = f"{target.database}_scratch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield target.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_tokens_issued_before_0007_expire_a_day_after_they_were_issued_and_none_is_revoked(database_url, tmp_path):
    issued = [datetime(2030, 1, 14, 12, 0, 0, 123456, tzinfo=UTC), datetime(2030, 1, 15, 11, 0, tzinfo=UTC)]
    users = table("users", column("id"), column("email"), column("password_hash"), column("is_admin", Boolean),
                  column("created_at", UTCDateTime()))
    tokens = table("api_tokens", column("token_hash"), column("user_id"), column("created_at", UTCDateTime()))
    clock = FakeClock(datetime(2030, 1, 15, 12, 0, tzinfo=UTC))
    with scratch_database(database_url, tmp_path) as url:
        app = create_app({"DATABASE_URL": url, "SCHEDULER_ENABLED": False, "CLOCK": clock})
        with app.app_context():
            upgrade(directory=MIGRATIONS_DIR, revision="0006")
            db.session.execute(insert(users).values(id=str(uuid.uuid4()), email="old@example.com", password_hash="!",
                                                    is_admin=False, created_at=issued[0]))
            user_id = db.session.scalar(select(users.c.id))
            db.session.execute(insert(tokens), [
                {"token_hash": hashlib.sha256(f"old-{n}".encode()).hexdigest(), "user_id": user_id, "created_at": at}
                for n, at in enumerate(issued)])
            db.session.commit()

            upgrade(directory=MIGRATIONS_DIR)

            rows = db.session.execute(select(ApiToken.created_at, ApiToken.expires_at, ApiToken.revoked_at)
                                      .order_by(ApiToken.created_at)).all()
            client = app.test_client()
            older, newer = ({"Authorization": f"Bearer old-{n}"} for n in range(2))
            answers = [client.get("/api/bookings/", headers=older).status_code,
                       client.get("/api/bookings/", headers=newer).status_code]
            clock.set(rows[0].expires_at)
            at_expiry = client.get("/api/bookings/", headers=older)
            answers.append((at_expiry.status_code, at_expiry.json.get("reason")))
            db.session.remove()
            db.engine.dispose()

    assert [(row.expires_at - row.created_at, row.revoked_at) for row in rows] == [(timedelta(days=1), None)] * 2
    assert rows[0].expires_at == datetime(2030, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)  # microseconds kept
    # 23 h 59 min 59.88 s and 1 h old at the FakeClock's start; then the older one's day is up.
    assert answers == [200, 200, (401, "token_expired")]
