"""The global sweep passes over a payment row another transaction holds (SPEC §4, FOR UPDATE SKIP LOCKED, PostgreSQL).

A sweeper that waited for that lock would stall every tick behind one slow
confirm; it must take the others now and the held one on a later run.
"""

import threading
from collections import Counter

from sqlalchemy import select, text

from persistence.db import db
from persistence.models import TransitionRecord
from persistence.sweep import sweep
from tests.builders import make_payment, register
from tests.conftest import requires_postgres
from tests.integration.support import payment_row

PAYMENTS = 4
PROMPT_SECONDS = 5.0   # a skipping sweep of four rows takes milliseconds; a waiting one never ends while held
RELEASE_SECONDS = 30.0

pytestmark = requires_postgres


def _sweep_in_a_thread(app, clock) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            with app.app_context():
                outcome["result"] = sweep(now=clock(), timeout_minutes=30)
        except BaseException as error:  # reported by the test, not lost in the thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _timeouts_per_payment(app) -> Counter:
    with app.app_context():
        return Counter(db.session.scalars(select(TransitionRecord.entity_id).where(
            TransitionRecord.entity == "payment", TransitionRecord.trigger == "timeout")))


def test_the_global_sweep_skips_a_row_another_transaction_holds_and_takes_it_on_the_next_run(app, client, clock):
    user = register(client)
    txns = [make_payment(app, client, user)["transaction_id"] for _ in range(PAYMENTS)]
    clock.advance(minutes=30)
    held, others = txns[1], [t for t in txns if t != txns[1]]

    with app.app_context():
        holder = db.engine.connect()
    try:
        holding = holder.begin()  # left open: the row stays locked, as under a slow confirm
        holder.execute(text("SELECT 1 FROM payments WHERE transaction_id = :t FOR UPDATE"), {"t": held})
        thread, outcome = _sweep_in_a_thread(app, clock)
        thread.join(PROMPT_SECONDS)
        waited = thread.is_alive()
        held_status = holder.scalar(text("SELECT status FROM payments WHERE transaction_id = :t"), {"t": held})
        holding.rollback()
    finally:
        holder.close()
    thread.join(RELEASE_SECONDS)  # a sweep that waited goes on once the lock is gone; let it end before asserting

    assert not waited, f"the sweep waited {PROMPT_SECONDS} s for a row another transaction held"
    assert "error" not in outcome, outcome
    assert sorted(p.transaction_id for p in outcome["result"].cancelled) == sorted(others)
    assert held_status == "PENDING"
    assert {t: payment_row(app, t).status for t in txns} == {**{t: "CANCELLED" for t in others}, held: "PENDING"}

    with app.app_context():
        second = sweep(now=clock(), timeout_minutes=30)

    assert [p.transaction_id for p in second.cancelled] == [held]
    assert payment_row(app, held).status == "CANCELLED"
    assert _timeouts_per_payment(app) == Counter({t: 1 for t in txns})
