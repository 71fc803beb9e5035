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
KILLS = 2            # workers killed inside a capture's write transaction
KILL_ATTEMPTS = 8    # batches tried to catch them (a few seconds each); one batch usually catches one
BATCH = 30           # confirms per batch


def wait_until(condition, what: str, timeout: float = WAIT_SECONDS, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s"
        time.sleep(every)


def all_payments_succeeded_with_bookings(engine, count: int) -> None:
    assert [tuple(r) for r in rows(engine, "SELECT status, count(*) FROM payments GROUP BY status")] == [
        ("SUCCESS", count)]
    assert rows(engine, "SELECT count(*) FROM bookings")[0][0] == count


def worker_inside_a_write_transaction(live, until) -> int | None:
    """A worker whose database connection is in a transaction that has written, if one is seen before `until()`.

    A capture writes in one short statement, so the poll is kept tight: one query, matched against
    each worker's database ports, which are read again only when a writing port is not yet known.
    """
    database_port = make_url(live.database_url).port or 5432
    ports_of: dict[int, set[int]] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    # One connection for the whole poll, in autocommit: each query then sees a fresh pg_stat_activity.
    with live.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while not until() and time.monotonic() < deadline:
            writing = set(conn.scalars(text(
                "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()")))
            if not writing:
                continue
            for attempt in range(2):
                for pid, ports in ports_of.items():
                    if writing & ports:
                        return pid
                if attempt == 0:  # a worker or a connection not mapped yet
                    ports_of = {pid: live.server.database_client_ports(pid, database_port)
                                for pid in live.server.worker_pids()}
    return None


def test_a_worker_killed_in_the_middle_of_confirms_leaves_no_capture_half_written(fresh_live):
    live, api = fresh_live, fresh_live.api
    user = api.register()
    confirmed: list[tuple[dict, Answer]] = []
    killed: list[int] = []
    # Eight clients keep all three sync workers busy. In each batch the victim is a worker seen, the
    # instant before the kill, inside a capture transaction that has written but not committed; a batch
    # that ends before one is seen is followed by a fresh one, a bounded number of times.
    for _ in range(KILL_ATTEMPTS):
        payments = [api.make_payment(user, api.make_cart(user)) for _ in range(BATCH)]
        live.server.wait_for_workers(3)
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(api.confirm, user, p) for p in payments]
            victim = worker_inside_a_write_transaction(live, until=lambda: all(f.done() for f in futures))
            if victim is not None:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            confirmed += zip(payments, [f.result(timeout=120) for f in futures])
        if len(killed) == KILLS:
            break

    assert len(killed) == KILLS, f"a worker was caught inside a write transaction {len(killed)} times in " \
                                 f"{KILL_ATTEMPTS} batches of {BATCH} confirms, wanted {KILLS}"
    answers = [answer for _, answer in confirmed]
    assert {a.status for a in answers} <= {200, None}, [a for a in answers if a.status not in (200, None)]
    cut_off = [a for a in answers if a.status is None]
    assert len(cut_off) >= 1, "every confirm was answered: no request was cut off by a kill"
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
