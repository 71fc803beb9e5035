"""The in-process APScheduler job that sweeps stale payments every SWEEP_INTERVAL_SECONDS.

Every gunicorn worker (and every machine) may run one. Correctness never
depends on there being only one: the sweep itself is a compare-and-set with
SKIP LOCKED. On PostgreSQL a session advisory lock merely lets the other
processes skip a tick someone else is already sweeping.
"""

import atexit
import time
import uuid
from contextlib import contextmanager

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import text

from persistence.db import db
from persistence.sweep import sweep
from web import metrics
from web.sweep_report import milliseconds, report_sweep

JOB_ID = "stale-payment-sweep"
ADVISORY_LOCK_KEY = 4_207_311_002
MISFIRE_GRACE_SECONDS = 30

log = structlog.get_logger()


def start_scheduler(app: Flask) -> BackgroundScheduler:
    """Start the sweep job for `app` and stop it cleanly at exit."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(run_sweep, "interval", seconds=app.config["SWEEP_INTERVAL_SECONDS"], args=[app], id=JOB_ID,
                      replace_existing=True, coalesce=True, max_instances=1,
                      misfire_grace_time=MISFIRE_GRACE_SECONDS)
    scheduler.start()
    atexit.register(stop_scheduler, scheduler)
    app.extensions["scheduler"] = scheduler
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=False)


def run_sweep(app: Flask) -> None:
    """One tick: sweep every stale open payment, log one `payments.sweep` event."""
    # Context does not cross threads: the job binds its own.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job=JOB_ID, run_id=uuid.uuid4().hex)
    started = time.perf_counter()
    with app.app_context():
        try:
            with _only_one_sweeper() as ours:
                if not ours:
                    log.info("payments.sweep", skipped=True, reason="another process is sweeping", cancelled=0,
                             duration_ms=milliseconds(time.perf_counter() - started))
                    return
                result = sweep(now=app.config["CLOCK"](), timeout_minutes=app.config["PAYMENT_TIMEOUT_MINUTES"])
        except Exception:
            db.session.rollback()
            duration = time.perf_counter() - started
            metrics.record_sweep(0, duration, failed=True)
            log.exception("payments.sweep", failed=True, cancelled=0, duration_ms=milliseconds(duration))
            return
        finally:
            db.session.remove()
    report_sweep(result)


@contextmanager
def _only_one_sweeper():
    """Yield True if this process may sweep now.

    PostgreSQL: a transaction-level advisory lock, taken on a connection of its
    own and held open for the whole run (the sweep commits per batch on other
    connections). Whatever happens, ending that transaction releases it.
    """
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as connection, connection.begin():
        yield bool(connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}))
