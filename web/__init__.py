"""The Flask application factory."""

import os
from collections.abc import Mapping

import click
from flask import Flask

from persistence.db import db, migrate
from persistence.engine import configure_engine, engine_options
from web import accounts_api, bookings_api, carts_api, cli, errors, logs, payments_api, services_api, webhooks_api
from web import cart_deletion_api, docs_page, openapi, ops_api, path_ids, refunds_api
from web.config import load
from web.gateway import gateway_from
from web.requests import MAX_BODY_BYTES


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app; `config` keys, named as the environment variables, override the environment."""
    instance_path = os.path.abspath(os.environ.get("INSTANCE_PATH", "instance"))
    settings = load(instance_path, config)
    logs.configure(settings["LOG_FORMAT"])  # before Flask() exists, so its own loggers are routed too
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(settings)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    os.makedirs(app.instance_path, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db)
    with app.app_context():
        configure_engine(db.engine)
    app.extensions["gateway"] = gateway_from(settings)

    errors.register(app)
    path_ids.register(app)
    for module in (accounts_api, services_api, carts_api, cart_deletion_api, payments_api, webhooks_api,
                   bookings_api, refunds_api):
        app.register_blueprint(module.bp)
    app.register_blueprint(services_api.admin_bp)
    app.register_blueprint(accounts_api.session_bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(docs_page.bp)
    ops_api.register(app)
    cli.register(app)
    if settings["SCHEDULER_ENABLED"] and _serving():
        from scheduler import start_scheduler  # noqa: PLC0415 (scheduler imports web.metrics)

        start_scheduler(app)
    return app


def _serving() -> bool:
    """True under gunicorn or `flask run`; False while the `flask` CLI loads the app for another command."""
    context = click.get_current_context(silent=True)
    return context is None or context.info_name == "run"
