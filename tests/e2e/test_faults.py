"""Faults under load: a worker killed mid-request, the database restarted. Nothing may be half-written."""

import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.e2e.helpers import Answer, consistency_errors, rows
from tests.e2e.private_postgres import PrivatePostgres, PrivatePostgresUnavailable
from tests.e2e.service import PostgresServer, live_service
from tests.skips import skip_or_fail

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 60
KILLS = 2            # workers killed in the middle of a capture, one per round
BATCH = 30           # confirms per round, eight at a time


def wait_until(condition, what: str, timeout: float = WAIT_SECONDS, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s"
        time.sleep(every)


def all_payments_succeeded_with_bookings(engine, count: int) -> None:
    assert [tuple(r) for r in rows(engine, "SELECT status, count(*) FROM payments GROUP BY status")] == [
        ("SUCCESS", count)]
    assert rows(engine, "SELECT count(*) FROM bookings")[0][0] == count


def worker_waiting_on_a_lock(live, until) -> int | None:
    """The worker whose database connection is waiting for a row lock, if one is seen before `until()`."""
    database_port = make_url(live.database_url).port or 5432
    deadline = time.monotonic() + WAIT_SECONDS
    with live.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while not until() and time.monotonic() < deadline:
            waiting = set(conn.scalars(text(
                "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")))
            for pid in live.server.worker_pids() if waiting else ():
                if waiting & live.server.database_client_ports(pid, database_port):
                    return pid
            time.sleep(0.01)
    return None


def test_a_worker_killed_in_the_middle_of_confirms_leaves_no_capture_half_written(fresh_live):
    live, api = fresh_live, fresh_live.api
    user = api.register()
    confirmed: list[tuple[dict, Answer]] = []
    victims: list[tuple[dict, Answer]] = []
    killed: list[int] = []
    # Each round, eight clients keep all three sync workers busy confirming, and the test holds the row
    # lock of one payment's cart: the worker confirming that payment is then certainly in the middle of
    # its capture (its statement waits for the lock) when it is killed. The lock is let go only after.
    for _ in range(KILLS):
        payments = [api.make_payment(user, api.make_cart(user)) for _ in range(BATCH)]
        victim_payment = payments[BATCH // 2]
        live.server.wait_for_workers(3)
        with live.engine.connect() as holder, ThreadPoolExecutor(max_workers=8) as pool:
            holder.execute(text("SELECT 1 FROM carts WHERE id = :id FOR UPDATE"), {"id": victim_payment["cart_id"]})
            futures = [pool.submit(api.confirm, user, p) for p in payments]
            victim = worker_waiting_on_a_lock(live, until=lambda: all(f.done() for f in futures))
            assert victim is not None, "no worker was seen waiting for the held cart lock"
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            holder.rollback()  # let go of the cart: whatever the orphaned statement does, it does whole
            answers = [f.result(timeout=120) for f in futures]
        confirmed += zip(payments, answers)
        victims.append((victim_payment, answers[BATCH // 2]))

    answers = [answer for _, answer in confirmed]
    assert {a.status for a in answers} <= {200, None}, [a for a in answers if a.status not in (200, None)]
    # The killed workers' clients got no answer: the kill really fell in the middle of their confirm.
    assert [answer.status for _, answer in victims] == [None] * KILLS, victims
    wait_until(lambda: len(set(live.server.worker_pids()) - set(killed)) >= 3, "gunicorn to replace the workers")
    # Right after the kills, before anyone retries: each capture happened whole or not at all.
    assert consistency_errors(live.engine) == []

    # A confirm that got no answer is simply retried: replayed if it had committed, captured if not.
    retried = [api.confirm(user, p) for p, a in confirmed if a.status != 200]
    assert [a.status for a in retried] == [200] * len(retried), retried
    all_payments_succeeded_with_bookings(live.engine, len(confirmed))
    assert consistency_errors(live.engine) == []
    assert live.server.unhandled_errors() == []


@pytest.fixture
def private_postgres():
    """A PostgreSQL server of this test's own: the shared one must never be restarted."""
    pg = None
    try:
        pg = PrivatePostgres()
        pg.init()
        pg.start()
    except PrivatePostgresUnavailable as exc:
        if pg is not None:
            pg.close()
        skip_or_fail(f"cannot set up a private PostgreSQL server to restart: {exc}")
    try:
        yield pg
    finally:
        pg.close()


class ConfirmLoad:
    """Client threads confirming payments until each got a 200, then reading bookings; every answer kept."""

    MAX_REQUESTS_PER_THREAD = 3000

    def __init__(self, api, user, payments, threads: int = 6):
        self.api, self.user = api, user
        self.todo = deque(payments)
        self.answers: list[tuple[str, Answer]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads), "a load thread did not stop"

    def _run(self) -> None:
        for _ in range(self.MAX_REQUESTS_PER_THREAD):
            if self.stopping.is_set():
                return
            with self.lock:
                payment = self.todo.popleft() if self.todo else None
            if payment is None:
                kind, answer = "read", self.api.http.get("/api/bookings/", headers=self.user["headers"])
            else:
                kind, answer = "confirm", self.api.confirm(self.user, payment)
            with self.lock:
                self.answers.append((kind, answer))
                if payment is not None and answer.status != 200:
                    self.todo.append(payment)
            if answer.status != 200:
                time.sleep(0.02)  # a client backing off while the service is unavailable

    def count(self, status) -> int:
        with self.lock:
            return sum(1 for _, a in self.answers if a.status == status)

    def remaining(self) -> int:
        with self.lock:
            return len(self.todo)


def test_postgres_restarted_under_load_answers_clean_503s_and_recovers_by_itself(private_postgres, tmp_path):
    server = PostgresServer(make_url(private_postgres.url))
    try:
        with live_service(server, tmp_path) as live:
            api = live.api
            user = api.register()
            payments = [api.make_payment(user, api.make_cart(user)) for _ in range(80)]

            with ConfirmLoad(api, user, payments) as load:
                wait_until(lambda: load.count(200) >= 5, "the first confirms")
                private_postgres.stop("immediate")  # as a crash: no shutdown checkpoint
                wait_until(lambda: load.count(503) >= 20, "503s while the database is down")
                private_postgres.start()
                # Nobody touches gunicorn: it must find the database again on its own.
                wait_until(lambda: load.remaining() == 0, "every payment to be confirmed after the restart")
            answers = load.answers

            assert {a.status for _, a in answers} <= {200, 503}, [a for _, a in answers if a.status not in (200, 503)]
            unavailable = [a for _, a in answers if a.status == 503]
            assert unavailable
            assert all(a.is_json and a.body["error"] == "Service Unavailable" and a.headers.get("retry-after")
                       for a in unavailable), unavailable[:3]
            assert not any("Traceback" in a.text or "SELECT" in a.text for a in unavailable)
            all_payments_succeeded_with_bookings(live.engine, len(payments))
            assert consistency_errors(live.engine) == []
            assert live.server.unhandled_errors() == []
    finally:
        server.dispose()
