"""The stale-payment sweep racing confirms and deletes over HTTP: gunicorn with several workers on PostgreSQL.

Payments are made stale by moving their `created_at` back past the timeout
with SQL, so the server (on its real clock) sees them as stale at once. The
sweep runs as `flask --app web cleanup-old-pending-payments` subprocesses and
as the in-process scheduler of every gunicorn worker (SWEEP_INTERVAL_SECONDS
0.2). Whoever wins each race, a payment ends in exactly one terminal state,
and a cart never ends both booked and DELETED.
"""

import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest
from sqlalchemy import bindparam, text

from tests.e2e.helpers import Answer, at_once, consistency_errors, rows
from tests.e2e.service import BIN, ROOT, live_service

pytestmark = pytest.mark.e2e

COMMAND_TIMEOUT_SECONDS = 120
WAIT_SECONDS = 60
SCHEDULER_ENV = {"SCHEDULER_ENABLED": "true", "SWEEP_INTERVAL_SECONDS": "0.2"}
CLI_ACTOR = "cli:cleanup-old-pending-payments"
SCHEDULER_ACTOR = "scheduler:stale-payment-sweep"
TERMINAL = {"SUCCESS", "FAILED", "CANCELLED"}
# Stale payments nobody confirms, so the sweeps take several batches (of 500) each.
BALLAST = 2000


@pytest.fixture(scope="module")
def sweeping_live(postgres_server, tmp_path_factory):
    """A service whose three workers each run the sweep every 0.2 s."""
    with live_service(postgres_server, tmp_path_factory.mktemp("e2e-sweeping"), env=SCHEDULER_ENV) as service:
        yield service


def _check_after(service) -> None:
    assert service.server.unhandled_errors() == []
    assert consistency_errors(service.engine) == []


@pytest.fixture
def checked(live):
    """`live`; after the test, no request hit the generic 500 handler and the database is consistent."""
    yield live
    _check_after(live)


@pytest.fixture
def checked_sweeping(sweeping_live):
    yield sweeping_live
    _check_after(sweeping_live)


class CommandSweep:
    """`flask --app web cleanup-old-pending-payments` in a subprocess, against the live service's database."""

    def __init__(self, database_url: str, workdir):
        env = {**os.environ, "DATABASE_URL": database_url, "SCHEDULER_ENABLED": "false", "LOG_FORMAT": "json",
               "INSTANCE_PATH": str(workdir / "instance")}
        self.stderr = open(workdir / f"sweep-{uuid.uuid4().hex[:6]}.log", "w+")
        self.proc = subprocess.Popen([str(BIN / "flask"), "--app", "web", "cleanup-old-pending-payments"],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        # Read its report as it comes: a long one must never block it on a full pipe.
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self.started.set()
        self.started.set()

    def wait_started(self) -> None:
        """Until it printed its first line: it is about to look for stale payments and sweep them."""
        assert self.started.wait(COMMAND_TIMEOUT_SECONDS), "the cleanup command printed nothing in time"
        assert self.lines and self.lines[0].startswith("Cleaning up pending payments older than"), self._report()

    def finish(self) -> int:
        """Wait for it to end; the number of payments it says it cancelled."""
        try:
            self.proc.wait(timeout=COMMAND_TIMEOUT_SECONDS)
            self.reader.join(timeout=COMMAND_TIMEOUT_SECONDS)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        output = "".join(self.lines)
        assert self.proc.returncode == 0, self._report()
        self.stderr.close()
        found = re.search(r"^Successfully cancelled (\d+) old pending payments affecting (\d+) carts$", output,
                          re.MULTILINE)
        assert found and output.rstrip().endswith("Cleanup completed!"), output[-3000:]
        return int(found.group(1))

    def _report(self) -> str:
        self.stderr.seek(0)
        return f"{''.join(self.lines)[-3000:]}\n{self.stderr.read()[-3000:]}"


def add_stale_ballast(live, user: dict, count: int) -> list[str]:
    """`count` stale INITIATED payments (their gateway order never came) on a cart of their own, by SQL.

    They make a sweep run long enough, over several batches, for the confirms to meet it mid-way.
    """
    cart_id = live.api.make_cart(user)
    statement = text("""
        INSERT INTO payments (transaction_id, cart_id, user_id, status, amount, currency, created_at, updated_at)
        SELECT 'TXN' || upper(substr(md5(:salt || g::text), 1, 12)), :cart, :user, 'INITIATED', 2500.00, 'INR',
               now() - interval '3 hours', now() - interval '3 hours'
        FROM generate_series(1, :n) AS g RETURNING transaction_id""")
    with live.engine.begin() as conn:
        return [r.transaction_id for r in conn.execute(statement, {"salt": uuid.uuid4().hex, "cart": cart_id,
                                                                  "user": user["user_id"], "n": count})]


def make_stale(engine, transaction_ids: list[str]) -> None:
    """Move the payments' creation two hours back: stale for any timeout up to that.

    One payment per transaction: a confirm locks its payment and then the cart's other payments, so
    one statement over many payments, holding some while it waits for the rest, can deadlock with it.
    """
    statement = text("UPDATE payments SET created_at = created_at - interval '2 hours' "
                     "WHERE transaction_id = :txn")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for transaction_id in transaction_ids:
            conn.execute(statement, {"txn": transaction_id})


def wait_until(condition, what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s"
        time.sleep(0.05)


def history_of(engine, transaction_id: str) -> list:
    return rows(engine, "SELECT from_state, to_state, trigger, actor, accepted FROM transitions "
                        "WHERE entity = 'payment' AND entity_id = :t ORDER BY id", t=transaction_id)


def sweeps_logged(service) -> int:
    """Payments the scheduler says it cancelled, added up over its `payments.sweep` log lines."""
    total = 0
    for line in service.server.log_text().splitlines():
        if '"payments.sweep"' in line:
            event = json.loads(line)
            if "cart_id" not in event:  # a cart endpoint's sweep of one cart, not the scheduler's
                total += event.get("cancelled", 0)
    return total


def assert_json_200_or_409(answers: list[Answer]) -> None:
    assert all(a.status in (200, 409) and a.is_json for a in answers), [a for a in answers
                                                                        if a.status not in (200, 409)]


def assert_each_payment_ended_once(service, payments: list[dict], answers: list[Answer]) -> dict[str, str]:
    """Each payment: exactly one terminal transition; a 200 is its booking, a 409 a recorded refusal.

    Returns each payment's final status by transaction id.
    """
    engine = service.engine
    booked = {r.transaction_id: r.id for r in rows(engine, "SELECT id, transaction_id FROM bookings")}
    finals = {}
    for payment, answer in zip(payments, answers):
        txn = payment["transaction_id"]
        status = rows(engine, "SELECT status FROM payments WHERE transaction_id = :t", t=txn)[0].status
        finals[txn] = status
        history = history_of(engine, txn)
        ended = [r for r in history if r.accepted and r.to_state in TERMINAL]
        assert len(ended) == 1 and ended[0].to_state == status, (txn, history)
        if answer.status == 200:
            assert status == "SUCCESS", (txn, answer)
            assert answer.body["payment"]["status"] == "SUCCESS"
            assert answer.body["booking"]["booking_id"] == booked[txn]
            assert answer.body["cart"]["status"] == "CONVERTED"
        else:
            assert answer.body["reason"] == "payment_not_pending", answer
            assert status == "CANCELLED", (txn, status)
            assert ended[0].trigger in {"timeout", "supersede"}, history
            # The customer was charged for a payment we no longer take: recorded once, not lost.
            assert [(r.trigger, r.accepted) for r in history if not r.accepted] == [("succeed", False)], history
        if status == "CANCELLED":
            assert txn not in booked
    return finals


def assert_one_booking_at_most_per_cart(service, cart_ids: list[str]) -> None:
    for cart_id in cart_ids:
        cart_status = rows(service.engine, "SELECT status FROM carts WHERE id = :c", c=cart_id)[0].status
        successes = rows(service.engine, "SELECT transaction_id FROM payments WHERE cart_id = :c "
                                         "AND status = 'SUCCESS'", c=cart_id)
        bookings = rows(service.engine, "SELECT id FROM bookings WHERE cart_id = :c", c=cart_id)
        assert len(successes) == len(bookings) <= 1, (cart_id, successes, bookings)
        assert cart_status == ("CONVERTED" if bookings else "ACTIVE"), (cart_id, cart_status)


def timeouts_by(engine, actor_prefix: str, payments: list[dict]) -> int:
    """Accepted timeouts of these payments recorded by an actor whose name starts so."""
    statement = text("SELECT count(*) FROM transitions WHERE entity = 'payment' AND trigger = 'timeout' "
                     "AND accepted AND actor LIKE :a AND entity_id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    with engine.connect() as conn:
        return conn.scalar(statement, {"a": f"{actor_prefix}%", "ids": [p["transaction_id"] for p in payments]})


def stale_payments(live, user, carts: int, per_cart: int) -> tuple[list[str], list[dict]]:
    api = live.api
    cart_ids = [api.make_cart(user) for _ in range(carts)]
    payments = [api.make_payment(user, cart_id) for cart_id in cart_ids for _ in range(per_cart)]
    make_stale(live.engine, [p["transaction_id"] for p in payments])
    return cart_ids, payments


def confirm_call(api, user, payment):
    return lambda: api.confirm(user, payment, f"pay_{payment['transaction_id']}")


def test_two_command_sweeps_and_forty_confirms_on_stale_payments_end_each_payment_exactly_once(checked, tmp_path):
    live, api = checked, checked.api
    user = api.register()
    cart_ids, payments = stale_payments(live, user, carts=20, per_cart=2)
    ballast = add_stale_ballast(live, user, BALLAST)

    sweeps = [CommandSweep(live.database_url, tmp_path) for _ in range(2)]
    try:
        for sweep in sweeps:
            sweep.wait_started()
        answers = at_once([confirm_call(api, user, p) for p in payments])
    finally:
        reported = [sweep.finish() for sweep in sweeps]

    assert_json_200_or_409(answers)
    finals = assert_each_payment_ended_once(live, payments, answers)
    assert_one_booking_at_most_per_cart(live, cart_ids)
    # Every timeout is recorded once, by the sweep that says it made it.
    ballast_payments = [{"transaction_id": t} for t in ballast]
    assert timeouts_by(live.engine, CLI_ACTOR, payments + ballast_payments) == sum(reported)
    assert timeouts_by(live.engine, CLI_ACTOR, ballast_payments) == BALLAST
    assert sum(1 for s in finals.values() if s == "SUCCESS") == sum(a.status == 200 for a in answers)


def test_the_scheduler_of_every_worker_and_a_command_racing_forty_confirms_end_each_payment_once(
        checked_sweeping, tmp_path):
    live, api = checked_sweeping, checked_sweeping.api
    user = api.register()
    cart_ids = [api.make_cart(user) for _ in range(20)]
    payments = [api.make_payment(user, cart_id) for cart_id in cart_ids for _ in range(2)]
    swept_before = sweeps_logged(live)

    command = CommandSweep(live.database_url, tmp_path)
    try:
        command.wait_started()
        # They turn stale as the confirms arrive: the next scheduler tick races them.
        results = at_once([lambda: make_stale(live.engine, [p["transaction_id"] for p in payments])]
                          + [confirm_call(api, user, p) for p in payments])
    finally:
        by_command = command.finish()
    answers = results[1:]

    assert_json_200_or_409(answers)
    wait_until(lambda: not rows(live.engine, "SELECT 1 FROM payments WHERE status IN ('INITIATED', 'PENDING')"),
               "every payment to be closed")
    assert_each_payment_ended_once(live, payments, answers)
    assert_one_booking_at_most_per_cart(live, cart_ids)
    assert timeouts_by(live.engine, CLI_ACTOR, payments) == by_command
    # The scheduler's log lines add up to the timeouts it recorded (once each, across three workers).
    wait_until(lambda: sweeps_logged(live) - swept_before == timeouts_by(live.engine, SCHEDULER_ACTOR, payments),
               "the scheduler's sweep log to match its recorded timeouts", timeout=10)


def delete_call(api, user, cart_id):
    return lambda: api.http.request("DELETE", f"/api/cart/carts/{cart_id}/", headers=user["headers"])


def assert_never_both_a_booking_and_a_deleted_cart(live, cart_ids, payments_by_cart, deletes, confirms) -> int:
    """Per cart exactly one of: confirmed (delete refused as converted) or deleted (confirm refused).

    Returns how many payments the deletes say they auto-cancelled.
    """
    auto_cancelled = 0
    for cart_id, deleted, confirmed in zip(cart_ids, deletes, confirms):
        cart_status = rows(live.engine, "SELECT status FROM carts WHERE id = :c", c=cart_id)[0].status
        bookings = rows(live.engine, "SELECT id, transaction_id FROM bookings WHERE cart_id = :c", c=cart_id)
        assert not (bookings and cart_status == "DELETED"), (cart_id, bookings)
        assert sorted([deleted.status, confirmed.status]) == [200, 409], (deleted, confirmed)
        if confirmed.status == 200:
            assert cart_status == "CONVERTED" and len(bookings) == 1
            assert deleted.body["reason"] == "cart_converted", deleted
            assert deleted.body["booking_id"] == bookings[0].id == confirmed.body["booking"]["booking_id"]
        else:
            assert cart_status == "DELETED" and bookings == []
            assert confirmed.body["reason"] == "payment_not_pending", confirmed
            assert deleted.body["deleted_cart_id"] == cart_id
            cleanup = deleted.body["auto_cleanup"]
            auto_cancelled += cleanup["payments_cancelled"] if cleanup else 0
            statuses = {r.status for r in rows(live.engine, "SELECT status FROM payments WHERE cart_id = :c",
                                               c=cart_id)}
            assert statuses == {"CANCELLED"}, (cart_id, statuses)
        for payment in payments_by_cart[cart_id]:
            history = history_of(live.engine, payment["transaction_id"])
            assert len([r for r in history if r.accepted and r.to_state in TERMINAL]) == 1, history
    return auto_cancelled


def test_deletes_racing_confirms_on_carts_with_stale_payments_never_leave_both_a_booking_and_a_deleted_cart(
        checked, tmp_path):
    live, api = checked, checked.api
    user = api.register()
    cart_ids, payments = stale_payments(live, user, carts=15, per_cart=2)
    payments_by_cart = {c: [p for p in payments if p["cart_id"] == c] for c in cart_ids}

    calls = []
    for cart_id in cart_ids:
        calls += [delete_call(api, user, cart_id), confirm_call(api, user, payments_by_cart[cart_id][0])]
    answers = at_once(calls)

    assert_json_200_or_409(answers)
    auto_cancelled = assert_never_both_a_booking_and_a_deleted_cart(live, cart_ids, payments_by_cart,
                                                                   answers[0::2], answers[1::2])
    # With no other sweeper running, every timeout is one a delete reported.
    assert timeouts_by(live.engine, "user:", payments) == auto_cancelled


def test_deletes_confirms_and_sweeps_racing_on_stale_payments_never_leave_both_a_booking_and_a_deleted_cart(
        checked_sweeping, tmp_path):
    live, api = checked_sweeping, checked_sweeping.api
    user = api.register()
    cart_ids = [api.make_cart(user) for _ in range(15)]
    payments = [api.make_payment(user, cart_id) for cart_id in cart_ids for _ in range(2)]
    payments_by_cart = {c: [p for p in payments if p["cart_id"] == c] for c in cart_ids}

    command = CommandSweep(live.database_url, tmp_path)
    try:
        command.wait_started()
        calls = [lambda: make_stale(live.engine, [p["transaction_id"] for p in payments])]
        for cart_id in cart_ids:
            calls += [delete_call(api, user, cart_id), confirm_call(api, user, payments_by_cart[cart_id][0])]
        answers = at_once(calls)[1:]
    finally:
        command.finish()

    assert_json_200_or_409(answers)
    deletes, confirms = answers[0::2], answers[1::2]
    # A delete that came before the payments turned stale was rightly told to wait; asked again now,
    # it is refused (the confirm won) or goes through (the payment was swept or superseded).
    for i, deleted in enumerate(deletes):
        if deleted.status == 409 and deleted.body["reason"] == "pending_payment_wait":
            deletes[i] = delete_call(api, user, cart_ids[i])()
    assert_never_both_a_booking_and_a_deleted_cart(live, cart_ids, payments_by_cart, deletes, confirms)
