"""The in-process sweep scheduler (SPEC §4, scheduler.py): started by create_app when enabled and serving."""

import re
import time
from contextlib import contextmanager

import click
import structlog
from prometheus_client import REGISTRY
from sqlalchemy import text
from structlog.testing import capture_logs as _capture_logs

import scheduler as scheduler_module
from persistence.db import db
from persistence.sweep import SWEEP_ACTOR
from scheduler import JOB_ID, run_sweep
from tests.builders import make_payment, register
from tests.conftest import requires_postgres
from tests.integration.support import history_rows, payment_row, snapshot

DEADLINE_SECONDS = 5.0
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def capture_logs():
    """structlog's capture with the bound context merged in (the job binds its own run id)."""
    return _capture_logs(processors=[structlog.contextvars.merge_contextvars])


def _wait_until(condition, deadline=DEADLINE_SECONDS) -> bool:
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@contextmanager
def scheduled_app(make_app, **config):
    """An app whose scheduler runs the sweep every 0.2 s; the scheduler is always shut down afterwards."""
    app = make_app(SCHEDULER_ENABLED=True, SWEEP_INTERVAL_SECONDS=0.2, **config)
    try:
        yield app
    finally:
        scheduler = app.extensions.get("scheduler")
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)  # let a running tick finish before the next test empties the tables


def _sweep_events(captured):
    return [e for e in captured if e["event"] == "payments.sweep"]


def _sample(name: str, **labels) -> float:
    """A sample of this process's metrics (prometheus_client's default registry), 0 before its first count."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _stale_payment(app, client, clock) -> dict:
    user = register(client)
    payment = make_payment(app, client, user)
    clock.advance(minutes=30)
    return payment


# --- the scheduled job ---------------------------------------------------------------------------------------


def test_the_scheduler_cancels_a_stale_payment_once_within_a_bounded_wait(app, client, clock, make_app):
    payment = _stale_payment(app, client, clock)
    txn = payment["transaction_id"]

    with scheduled_app(make_app) as scheduled, capture_logs() as captured:
        assert scheduled.extensions["scheduler"].running
        assert _wait_until(lambda: payment_row(app, txn).status == "CANCELLED"), "the job never swept"
        # a few more ticks: none of them may touch the payment again
        runs_so_far = len(_sweep_events(captured))
        assert _wait_until(lambda: len(_sweep_events(captured)) >= runs_so_far + 2), "the job stopped ticking"

    assert history_rows(app, "payment", txn)[1:] == [("PENDING", "CANCELLED", "timeout", SWEEP_ACTOR, True)]


def test_each_run_logs_exactly_one_sweep_event_with_its_own_run_id(app, client, clock, make_app):
    _stale_payment(app, client, clock)

    with scheduled_app(make_app), capture_logs() as captured:
        assert _wait_until(lambda: len(_sweep_events(captured)) >= 3), "fewer than three runs were logged"

    events = _sweep_events(captured)
    run_ids = [e["run_id"] for e in events]
    assert len(run_ids) == len(set(run_ids))  # one event per run
    assert all(RUN_ID.match(r) for r in run_ids)
    assert {e["job"] for e in events} == {JOB_ID}
    assert all("request_id" not in e for e in events)
    completed = [e for e in events if not e.get("skipped")]
    assert sum(e["cancelled"] for e in completed) <= 1
    for event in completed:
        assert set(event) >= {"cancelled", "carts", "batches", "longest_batch_ms", "duration_ms"}
        assert event["log_level"] == "info"


def test_the_job_coalesces_and_never_runs_twice_at_once(make_app, app):
    with scheduled_app(make_app) as scheduled:
        job = scheduled.extensions["scheduler"].get_job(JOB_ID)

        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.trigger.interval.total_seconds() == 0.2


def test_healthz_reports_the_scheduler_running_then_stopped(make_app, app):
    with scheduled_app(make_app) as scheduled:
        client = scheduled.test_client()
        assert client.get("/healthz").json == {"status": "ok", "database": "ok", "scheduler": "running"}
        scheduled.extensions["scheduler"].shutdown(wait=True)
        assert client.get("/healthz").json["scheduler"] == "stopped"


def test_with_the_scheduler_disabled_there_is_none(make_app, app):
    plain = make_app(SCHEDULER_ENABLED=False)

    assert "scheduler" not in plain.extensions
    assert plain.test_client().get("/healthz").json["scheduler"] == "disabled"


def test_the_scheduler_is_stopped_at_interpreter_exit(make_app, app, monkeypatch):
    at_exit = []
    monkeypatch.setattr(scheduler_module.atexit, "register", lambda fn, *args: at_exit.append((fn, args)))

    with scheduled_app(make_app) as scheduled:
        scheduler = scheduled.extensions["scheduler"]
        assert scheduler.running
        for fn, args in at_exit:  # what the interpreter would run on its way out
            fn(*args)

        assert at_exit, "nothing was registered to run at exit"
        assert not scheduler.running


def test_a_cli_command_other_than_run_does_not_start_the_scheduler(make_app, app):
    with click.Context(click.Command("cleanup-old-pending-payments"), info_name="cleanup-old-pending-payments"):
        loaded = make_app(SCHEDULER_ENABLED=True, SWEEP_INTERVAL_SECONDS=0.2)

    assert "scheduler" not in loaded.extensions


def test_flask_run_starts_the_scheduler(make_app, app):
    with click.Context(click.Command("run"), info_name="run"):
        with scheduled_app(make_app) as served:
            assert served.extensions["scheduler"].running


# --- one run, called directly ---------------------------------------------------------------------------------


def test_one_run_sweeps_and_logs_one_event_with_counts(app, client, clock):
    payment = _stale_payment(app, client, clock)
    structlog.contextvars.bind_contextvars(request_id="not-this-thread's-business")

    with capture_logs() as captured:
        run_sweep(app)
    with capture_logs() as second:
        run_sweep(app)

    [event] = _sweep_events(captured)
    assert (event["cancelled"], event["carts"], event["batches"], event["job"]) == (1, 1, 1, JOB_ID)
    assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0
    assert "request_id" not in event
    [again] = _sweep_events(second)
    assert again["cancelled"] == 0
    assert again["run_id"] != event["run_id"]
    assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"


def test_a_run_logs_every_cancellation_in_its_own_context_before_its_sweep_event(app, client, clock, monkeypatch):
    # Small batches, so several batches' lines are written by the sweep's log thread while later batches run.
    monkeypatch.setattr(scheduler_module, "sweep", _sweep_in_batches_of_two)
    user = register(client)
    txns = [make_payment(app, client, user)["transaction_id"] for _ in range(5)]
    clock.advance(minutes=30)

    with capture_logs() as captured:
        run_sweep(app)

    [sweep_event] = _sweep_events(captured)
    transitions = [e for e in captured if e["event"] == "payment.transition"]
    assert sweep_event["batches"] == 3 and captured[-1] is sweep_event  # every line is out before the run ends
    assert sorted(e["transaction_id"] for e in transitions) == sorted(txns)
    assert {(e["from"], e["to"], e["trigger"], e["actor"]) for e in transitions} == {
        ("PENDING", "CANCELLED", "timeout", SWEEP_ACTOR)}
    assert {e["run_id"] for e in transitions} == {sweep_event["run_id"]}  # the thread carries the run's context


def _sweep_in_batches_of_two(**kwargs):
    from persistence.sweep import sweep

    return sweep(batch_size=2, **kwargs)


def test_one_run_counts_itself_and_its_cancellations_in_the_metrics(app, client, clock):
    user = register(client)
    for _ in range(2):
        make_payment(app, client, user)
    clock.advance(minutes=30)
    before = (_sample("payment_sweep_runs_total", outcome="ok"), _sample("payment_sweep_cancelled_total"))

    run_sweep(app)

    after = (_sample("payment_sweep_runs_total", outcome="ok"), _sample("payment_sweep_cancelled_total"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 2)


def test_a_failing_run_is_logged_and_counted_and_changes_nothing(app, client, clock, monkeypatch):
    _stale_payment(app, client, clock)
    before = snapshot(app)
    failed_runs = _sample("payment_sweep_runs_total", outcome="failed")

    def broken_sweep(**_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(scheduler_module, "sweep", broken_sweep)
    with capture_logs() as captured:
        run_sweep(app)  # must not raise: the scheduler thread has to survive

    [event] = _sweep_events(captured)
    assert event["failed"] is True
    assert event["log_level"] == "error"
    assert event["cancelled"] == 0
    assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0
    assert _sample("payment_sweep_runs_total", outcome="failed") - failed_runs == 1
    assert snapshot(app) == before


@requires_postgres
def test_a_run_skipped_while_another_process_sweeps_is_logged_with_counts_and_changes_nothing(app, client, clock):
    payment = _stale_payment(app, client, clock)
    with app.app_context():
        other_process = db.engine.connect()
    try:
        other_process.execute(text("SELECT pg_advisory_lock(:key)"), {"key": scheduler_module.ADVISORY_LOCK_KEY})
        with capture_logs() as captured:
            run_sweep(app)
    finally:
        other_process.close()  # ending the session releases its advisory lock

    [event] = _sweep_events(captured)
    assert event["skipped"] is True
    assert event["log_level"] == "info"
    assert event["cancelled"] == 0
    assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0
    assert payment_row(app, payment["transaction_id"]).status == "PENDING"


def test_the_longest_allowed_intervals_still_start_the_scheduler(make_app):
    from web.config import MAX_MINUTES, MAX_SECONDS

    app = make_app(SCHEDULER_ENABLED=True, SWEEP_INTERVAL_SECONDS=MAX_SECONDS, REFUND_INTERVAL_SECONDS=MAX_SECONDS,
                   RECONCILE_INTERVAL_MINUTES=MAX_MINUTES)
    scheduler = app.extensions["scheduler"]
    try:
        assert scheduler.running
        assert sorted(job.id for job in scheduler.get_jobs()) == ["reconcile-payments", "refund-job",
                                                                  "stale-payment-sweep"]
    finally:
        scheduler.shutdown(wait=True)


def test_reconciliation_interval_zero_schedules_no_reconciliation(make_app):
    app = make_app(SCHEDULER_ENABLED=True, RECONCILE_INTERVAL_MINUTES=0)
    scheduler = app.extensions["scheduler"]
    try:
        assert sorted(job.id for job in scheduler.get_jobs()) == ["refund-job", "stale-payment-sweep"]
    finally:
        scheduler.shutdown(wait=True)
