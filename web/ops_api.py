"""Operations endpoints: /healthz, /metrics, /openapi.json; and the request logging and metrics wiring."""

import structlog
from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from persistence.db import db
from web import metrics, request_log
from web.openapi import build_document

log = structlog.get_logger()

bp = Blueprint("operations", __name__)

# apscheduler.schedulers.base: STATE_STOPPED, STATE_RUNNING, STATE_PAUSED
_SCHEDULER_STATES = {0: "stopped", 1: "running", 2: "paused"}


def register(app: Flask) -> None:
    """Log and measure every request, count transitions, and serve the operations endpoints."""
    request_log.register(app)
    metrics.register(app)
    app.register_blueprint(bp)


def scheduler_state(scheduler) -> str:
    """running / paused / stopped for the in-process sweep scheduler; disabled when there is none."""
    if scheduler is None:
        return "disabled"
    state = getattr(scheduler, "state", None)
    if isinstance(state, int) and state in _SCHEDULER_STATES:
        return _SCHEDULER_STATES[state]
    running = getattr(scheduler, "running", None)
    if isinstance(running, bool):
        return "running" if running else "stopped"
    return str(state or "unknown")


def database_reachable() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return True
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("healthz.database_unreachable", error=type(getattr(exc, "orig", None) or exc).__name__)
        return False


@bp.get("/healthz")
def healthz():
    """Say whether the service and its database are up."""
    scheduler = scheduler_state(current_app.extensions.get("scheduler"))
    if database_reachable():
        return {"status": "ok", "database": "ok", "scheduler": scheduler}
    response = jsonify({"status": "unavailable", "database": "unreachable", "scheduler": scheduler,
                        "error": "Service Unavailable", "detail": "The database cannot be reached."})
    response.status_code = 503
    return response


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus metrics, every worker's added up."""
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of every endpoint."""
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_document()
    return document
