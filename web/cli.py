"""Flask CLI commands: thin click wrappers over plain functions."""

import click
from flask import Flask, current_app
from flask_migrate import upgrade

from persistence import accounts
from persistence.db import MIGRATIONS_DIR
from persistence.errors import Conflict
from web import cleanup_cli, diagram_cli, refund_cli


def init_db() -> None:
    """Bring the schema up to date with the migrations; a no-op when it already is."""
    upgrade(directory=MIGRATIONS_DIR)


def register(app: Flask) -> None:
    diagram_cli.register(app)
    cleanup_cli.register(app)
    refund_cli.register(app)

    @app.cli.command("init-db")
    def init_db_command():
        """Bring the database schema up to date (safe to run before every start)."""
        init_db()
        click.echo("Database schema is up to date.")

    @app.cli.command("create-user")
    @click.argument("email")
    @click.option("--password", required=True, help="At least 8 characters.")
    @click.option("--admin", is_flag=True, help="May add services to the catalogue.")
    def create_user_command(email: str, password: str, admin: bool):
        """Create a user (an administrator with --admin)."""
        if len(password) < 8:
            raise click.BadParameter("must be at least 8 characters", param_hint="--password")
        try:
            user = accounts.create_user(email, password, now=current_app.config["CLOCK"](), is_admin=admin,
                                       hash_method=current_app.config["PASSWORD_HASH_METHOD"])
        except Conflict as exc:
            raise click.ClickException(exc.detail) from None
        click.echo(f"Created {'admin ' if admin else ''}user {user.email} ({user.id})")
