"""The init-db and create-user commands (SPEC §4), through app.test_cli_runner()."""

from sqlalchemy import inspect, select, text

from persistence.db import db
from persistence.models import User
from tests.builders import auth
from tests.integration.support import count, snapshot

TABLES = {"users", "api_tokens", "services", "carts", "cart_items", "payments", "bookings", "transitions",
          "idempotency_keys", "webhook_events", "login_failures", "refunds", "alembic_version"}


def _head(app) -> str:
    with app.app_context():
        return db.session.scalar(text("SELECT version_num FROM alembic_version"))


def _newest_migration() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from persistence.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def test_init_db_on_an_up_to_date_database_changes_nothing(app, runner, client):
    from tests.builders import make_cart, register

    user = register(client)
    make_cart(app, client, user)
    before = snapshot(app)

    result = runner.invoke(args=["init-db"])

    assert result.exit_code == 0, result.output
    assert "Database schema is up to date." in result.output
    assert snapshot(app) == before
    assert _head(app) == _newest_migration()


def test_init_db_creates_the_schema_on_an_empty_database_and_can_run_again(make_app, tmp_path):
    fresh = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    runner = fresh.test_cli_runner()

    first = runner.invoke(args=["init-db"])
    second = runner.invoke(args=["init-db"])

    assert (first.exit_code, second.exit_code) == (0, 0), (first.output, second.output)
    with fresh.app_context():
        assert set(inspect(db.engine).get_table_names()) == TABLES
        assert db.session.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    assert _head(fresh) == _newest_migration()


def test_create_user_makes_a_customer_who_can_log_in(app, runner, client):
    result = runner.invoke(args=["create-user", "Cli@Example.com", "--password", "cli-password"])

    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User))
    assert (user.email, user.is_admin) == ("cli@example.com", False)
    assert result.output.strip() == f"Created user cli@example.com ({user.id})"
    token = client.post("/api/auth/token", json={"email": "cli@example.com", "password": "cli-password"})
    assert token.status_code == 200
    refused = client.post("/api/services/", headers=auth(token.json["token"]),
                          json={"name": "X", "price": "1.00", "duration_minutes": 30})
    assert refused.status_code == 403


def test_create_user_with_admin_makes_an_administrator(app, runner, client):
    result = runner.invoke(args=["create-user", "boss@example.com", "--password", "boss-password", "--admin"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Created admin user boss@example.com (")
    with app.app_context():
        assert db.session.scalar(select(User.is_admin).where(User.email == "boss@example.com")) is True
    token = client.post("/api/auth/token", json={"email": "boss@example.com", "password": "boss-password"}).json
    created = client.post("/api/services/", headers=auth(token["token"]),
                          json={"name": "Made by admin", "price": "1.00", "duration_minutes": 30})
    assert created.status_code == 201


def test_create_user_with_a_taken_email_fails_and_changes_nothing(app, runner):
    runner.invoke(args=["create-user", "dup@example.com", "--password", "first-password"])
    before = snapshot(app)

    result = runner.invoke(args=["create-user", "DUP@example.com", "--password", "second-password", "--admin"])

    assert result.exit_code == 1
    assert "already exists" in result.output
    assert snapshot(app) == before


def test_create_user_with_a_short_password_fails_and_creates_nobody(app, runner):
    result = runner.invoke(args=["create-user", "short@example.com", "--password", "1234567"])

    assert result.exit_code == 2
    assert "at least 8 characters" in result.output
    assert count(app, User) == 0


def test_create_user_needs_a_password(app, runner):
    result = runner.invoke(args=["create-user", "nopw@example.com"])

    assert result.exit_code == 2
    assert "--password" in result.output
    assert count(app, User) == 0


def test_a_user_created_on_the_command_line_cannot_also_register(app, runner, client):
    runner.invoke(args=["create-user", "both@example.com", "--password", "cli-password"])

    response = client.post("/api/auth/register", json={"email": "both@example.com", "password": "web-password"})

    assert response.status_code == 409
    assert count(app, User) == 1
