"""Operations endpoints: /healthz and /metrics (web/openapi.py serves /openapi.json); request logging and metrics."""

import structlog
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from persistence.db import db
from web import metrics, request_log
from web.responses import Health, Unhealthy

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
        return Health(scheduler=scheduler).body()
    return Unhealthy(scheduler=scheduler).body(), 503


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus metrics, every worker's added up."""
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)

