"""Prometheus metrics: defined here, exposed at /metrics, correct across gunicorn workers.

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before any
worker starts; prometheus-client then keeps each worker's samples in files
there and /metrics adds them up, whichever worker answers the scrape. The
open-payment and refund gauges are not kept per process: they are read from
the database at scrape time, in one transaction. The alerting rules kept in
deploy/prometheus/alerts.yml use these names; tests hold the two together.
"""

import os
import time
from collections import Counter as tally

from flask import Flask, current_app
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from machines import OPEN_PAYMENT_STATES, RefundStatus
from machines.deletion_policy import stale_cutoff
from persistence import writer
from persistence.db import db
from persistence.models import Payment, Refund, open_payments_only

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUEST_LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer a request, by URL rule, method and status.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TRANSITIONS = Counter(
    "state_transitions", "State machine triggers by entity, trigger and outcome: accepted (committed), "
    "refused (a late capture recorded with accepted=false), rejected (not allowed from the state, or lost a race).",
    ["entity", "trigger", "outcome"],
)
LATE_CAPTURES = Counter(
    "payment_late_captures", "Captures refused because the payment was no longer PENDING: each needs a refund.")
SWEEP_RUNS = Counter("payment_sweep_runs", "Sweeps of stale open payments, by outcome (ok or failed).", ["outcome"])
SWEEP_CANCELLED = Counter("payment_sweep_cancelled", "Stale open payments the sweep cancelled (timeout).")
SWEEP_DURATION = Histogram("payment_sweep_duration_seconds", "Time one sweep run took.",
                           buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
SWEEP_LAST_SUCCESS = Gauge("payment_sweep_last_success_timestamp_seconds",
                           "Unix time of the last sweep that finished without error.", multiprocess_mode="max")
REFUND_RUNS = Counter("refund_job_runs", "Runs of the refund job, by outcome (ok or failed).", ["outcome"])
REFUND_ATTEMPTS = Counter("refund_attempts", "Refunds sent to the gateway, by what came of each: succeeded, "
                          "failed (for good), retry (a transient error, or the gateway has yet to settle it).",
                          ["outcome"])
REFUND_LAST_SUCCESS = Gauge("refund_job_last_success_timestamp_seconds",
                            "Unix time of the last refund job run that finished without error.",
                            multiprocess_mode="max")
RECONCILE_RUNS = Counter("reconcile_runs", "Runs of the payment reconciliation, by outcome (ok or failed).",
                         ["outcome"])
RECONCILE_LAST_SUCCESS = Gauge("reconcile_last_success_timestamp_seconds",
                               "Unix time of the last reconciliation that finished without error.",
                               multiprocess_mode="max")


# Label values come from closed sets only: a method a client makes up must not make a new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    method = method if method in KNOWN_METHODS else "other"
    REQUEST_LATENCY.labels(endpoint, method, str(status)).observe(seconds)


def count_transitions(moved: list[writer.Moved], outcome: str) -> None:
    """A `persistence.writer` observer: one count per trigger, and late captures apart."""
    for (entity, trigger), count in tally((m.entity, m.trigger) for m in moved).items():
        TRANSITIONS.labels(entity, trigger, outcome).inc(count)
        if outcome == "refused" and entity == "payment" and trigger == "succeed":
            LATE_CAPTURES.inc(count)


def record_sweep(cancelled: int, duration_s: float, *, failed: bool = False) -> None:
    """Count one sweep run; the sweep's caller (scheduler, CLI) calls this after each run."""
    SWEEP_RUNS.labels("failed" if failed else "ok").inc()
    SWEEP_DURATION.observe(duration_s)
    if not failed:
        SWEEP_CANCELLED.inc(cancelled)
        SWEEP_LAST_SUCCESS.set(time.time())


def record_refund_run(outcomes: dict[str, int], *, failed: bool = False) -> None:
    """Count one run of the refund job and what its attempts came to; its callers (scheduler, CLI) call this."""
    REFUND_RUNS.labels("failed" if failed else "ok").inc()
    for outcome, count in outcomes.items():
        REFUND_ATTEMPTS.labels(outcome).inc(count)
    if not failed:
        REFUND_LAST_SUCCESS.set(time.time())


def record_reconcile_run(*, failed: bool = False) -> None:
    RECONCILE_RUNS.labels("failed" if failed else "ok").inc()
    if not failed:
        RECONCILE_LAST_SUCCESS.set(time.time())


def record_cart_sweep(cancelled: int) -> None:
    """Count what the sweep of one cart (a cart endpoint's) cancelled; it is not a run of the global sweep."""
    SWEEP_CANCELLED.inc(cancelled)


# The scheduler's job ids (scheduler.py) and the settings of their intervals. Not imported from there:
# scheduler.py imports this module. The label is not called `job`: Prometheus gives every target a `job`
# label of its own, and the rules aggregate by it.
SCHEDULED_JOBS = {"stale-payment-sweep": "SWEEP_INTERVAL_SECONDS", "refund-job": "REFUND_INTERVAL_SECONDS"}


class DatabaseCollector:
    """Open payments and refunds by state and the oldest of each, read at scrape time in one transaction."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        up = GaugeMetricFamily("metrics_database_up", "1 if the scrape could query the database, else 0.")
        try:
            open_payments, refunds = self._query()
        except SQLAlchemyError:
            db.session.rollback()
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self.app.config["CLOCK"]()
        yield from _open_payment_gauges(open_payments, now)
        yield from _refund_gauges(refunds, now)

    def _query(self) -> tuple[dict, dict]:
        cutoff = stale_cutoff(self.app.config["CLOCK"](), self.app.config["PAYMENT_TIMEOUT_MINUTES"])
        open_payments = (
            select(Payment.status, func.count(), func.sum(case((Payment.created_at <= cutoff, 1), else_=0)),
                   func.min(Payment.created_at))
            .where(open_payments_only())  # the states written out: the partial index then applies
            .group_by(Payment.status)
        )
        # Only late captures make refunds, so the table stays small; the (status, next_attempt_at) index
        # covers the counts.
        refunds = select(Refund.status, func.count(), func.min(Refund.created_at)).group_by(Refund.status)
        payment_rows = {status: (count, stale, first)
                        for status, count, stale, first in db.session.execute(open_payments)}
        refund_rows = {status: (count, first) for status, count, first in db.session.execute(refunds)}
        db.session.rollback()
        return payment_rows, refund_rows


def _open_payment_gauges(rows: dict, now):
    by_state = GaugeMetricFamily("payments_open", "Open payments (INITIATED, PENDING) by state.", labels=["state"])
    stale = GaugeMetricFamily("payments_open_stale", "Open payments older than PAYMENT_TIMEOUT_MINUTES, "
                              "by state: the sweep should have cancelled them.", labels=["state"])
    oldest = GaugeMetricFamily("payments_open_oldest_age_seconds", "Age of the oldest open payment "
                               "(0 when there is none).")
    oldest_at = None
    for state in OPEN_PAYMENT_STATES:
        count, stale_count, first = rows.get(state.value, (0, 0, None))
        by_state.add_metric([state.value], count)
        stale.add_metric([state.value], stale_count or 0)
        if first is not None and (oldest_at is None or first < oldest_at):
            oldest_at = first
    oldest.add_metric([], _age(now, oldest_at))
    return by_state, stale, oldest


def _refund_gauges(rows: dict, now):
    # Every state, 0 included: a rule on refunds{state="FAILED"} then sees a series before the first failure.
    by_state = GaugeMetricFamily("refunds", "Refunds by state (REQUESTED, SUCCEEDED, FAILED).", labels=["state"])
    for state in RefundStatus:
        by_state.add_metric([state.value], rows.get(state.value, (0, None))[0])
    oldest = GaugeMetricFamily("refunds_requested_oldest_age_seconds", "Age of the oldest REQUESTED refund, "
                               "from when it was first requested (0 when there is none).")
    oldest.add_metric([], _age(now, rows.get(RefundStatus.REQUESTED.value, (0, None))[1]))
    return by_state, oldest


def _age(now, since) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


class ScheduleCollector:
    """The configured interval of each scheduled job, so that alerting rules need not repeat the configuration."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        interval = GaugeMetricFamily("scheduler_job_interval_seconds", "Seconds between two runs of a scheduled "
                                     "job, as configured.", labels=["scheduler_job"])
        for job, setting in SCHEDULED_JOBS.items():
            interval.add_metric([job], float(self.app.config[setting]))
        yield interval


class _Scrape:
    """The collectors of one scrape: this process's (or every worker's) metrics plus the database's."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition() -> tuple[bytes, str]:
    """The body and content type of /metrics."""
    if os.environ.get(MULTIPROC_ENV):
        process_metrics = CollectorRegistry()
        MultiProcessCollector(process_metrics)
    else:
        process_metrics = REGISTRY
    app = current_app._get_current_object()
    scrape = _Scrape(process_metrics, DatabaseCollector(app), ScheduleCollector(app))
    return generate_latest(scrape), CONTENT_TYPE_LATEST


def register(app: Flask) -> None:
    """Count transitions as the writer reports them; idempotent (tests build many apps)."""
    if count_transitions not in writer.transition_observers:
        writer.transition_observers.append(count_transitions)
