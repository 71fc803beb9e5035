"""The in-process APScheduler jobs: the sweep of stale payments, the refund job and reconciliation.

Every gunicorn worker (and every machine) may run them. Correctness never
depends on there being only one: the sweep is a compare-and-set with SKIP
LOCKED, the refund job claims each refund in a committed unit of work before
it is sent, and reconciliation decides under the cart lock. On PostgreSQL a
session advisory lock merely lets the other processes skip a sweep or a
reconciliation someone else is already running (reconciliation asks the
gateway about every recently closed order: once is enough).
"""

import atexit
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, current_app
from sqlalchemy import text

from persistence.db import db
from persistence.sweep import sweep
from web import metrics, reconciliation, refund_job
from web.sweep_report import milliseconds, report_sweep

JOB_ID = "stale-payment-sweep"
REFUND_JOB_ID = "refund-job"
RECONCILE_JOB_ID = "reconcile-payments"
ADVISORY_LOCK_KEY = 4_207_311_002
RECONCILE_LOCK_KEY = 4_207_311_003
MISFIRE_GRACE_SECONDS = 30

log = structlog.get_logger()


def start_scheduler(app: Flask) -> BackgroundScheduler:
    """Start the jobs for `app` and stop them cleanly at exit."""
    scheduler = BackgroundScheduler(timezone="UTC")
    every = dict(replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=MISFIRE_GRACE_SECONDS)
    scheduler.add_job(run_sweep, "interval", seconds=app.config["SWEEP_INTERVAL_SECONDS"], args=[app], id=JOB_ID,
                      **every)
    scheduler.add_job(run_refunds, "interval", seconds=app.config["REFUND_INTERVAL_SECONDS"], args=[app],
                      id=REFUND_JOB_ID, **every)
    if app.config["RECONCILE_INTERVAL_MINUTES"] > 0:
        scheduler.add_job(run_reconciliation, "interval", minutes=app.config["RECONCILE_INTERVAL_MINUTES"],
                          args=[app], id=RECONCILE_JOB_ID, **every)
    scheduler.start()
    atexit.register(stop_scheduler, scheduler)
    app.extensions["scheduler"] = scheduler
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=False)


def run_sweep(app: Flask) -> None:
    """One tick: sweep every stale open payment, log one `payments.sweep` event."""
    started = time.perf_counter()
    with _job(app, JOB_ID):
        try:
            with _only_one(ADVISORY_LOCK_KEY) as ours:
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
        report_sweep(result)


def run_refunds(app: Flask) -> None:
    """One tick of the refund job: send every due refund, log one `refunds.run` event."""
    with _job(app, REFUND_JOB_ID):
        _reported(lambda: refund_job.send_refunds(current_app.extensions["gateway"], clock=app.config["CLOCK"],
                                                  max_attempts=app.config["REFUND_MAX_ATTEMPTS"]),
                  refund_job.report, "refunds.run", lambda: metrics.record_refund_run({}, failed=True))


def run_reconciliation(app: Flask) -> None:
    """One scheduled reconciliation of the last 24 hours' closed orders; one process at a time."""
    with _job(app, RECONCILE_JOB_ID), _only_one(RECONCILE_LOCK_KEY) as ours:
        if not ours:
            log.info("payments.reconcile", skipped=True, reason="another process is reconciling")
            return
        _reported(lambda: reconciliation.reconcile(current_app.extensions["gateway"], clock=app.config["CLOCK"],
                                                   hours=reconciliation.DEFAULT_HOURS),
                  reconciliation.report, "payments.reconcile", lambda: metrics.record_reconcile_run(failed=True))


def _reported(run: Callable, report: Callable, event: str, count_failure: Callable) -> None:
    started = time.perf_counter()
    try:
        result = run()
    except Exception:
        db.session.rollback()
        count_failure()
        log.exception(event, failed=True, duration_ms=milliseconds(time.perf_counter() - started))
        return
    report(result)


@contextmanager
def _job(app: Flask, job_id: str) -> Iterator[None]:
    """A job's own log context and app context; its session is given back at the end."""
    # Context does not cross threads: the job binds its own.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job=job_id, run_id=uuid.uuid4().hex)
    with app.app_context():
        try:
            yield
        finally:
            db.session.remove()


@contextmanager
def _only_one(key: int) -> Iterator[bool]:
    """Yield True if this process may run the job now.

    PostgreSQL: a transaction-level advisory lock, taken on a connection of its
    own and held open for the whole run (the job commits on other
    connections). Whatever happens, ending that transaction releases it.
    """
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as connection, connection.begin():
        yield bool(connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))
