"""Several processes sweep the same stale payments at once while customers confirm some (SPEC §4, PostgreSQL).

Every payment must end with exactly one terminal transition, a confirmed one is never cancelled, each
cancellation is recorded once, and there are bookings for SUCCESS payments only.
"""

import multiprocessing
import threading
import traceback
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from persistence.db import db
from persistence.models import Booking, Cart, Payment, TransitionRecord
from persistence.sweep import sweep
from tests.builders import future_date, make_service, register, signature, start_payment
from tests.conftest import requires_postgres

CARTS = 60
PAYMENTS_PER_CART = 5            # 300 payments, all created at the FakeClock's start
CONFIRMED_CARTS = 40             # one payment of each of these is confirmed during the sweep
SWEEPERS = 3
SWEEP_BATCH = 7                  # small batches, so the sweepers interleave with each other and the captures
SWEEP_NOW = datetime(2030, 1, 15, 13, 0, tzinfo=UTC)   # an hour after the payments were made: all stale
WAIT_SECONDS = 60
TERMINAL = {"SUCCESS", "CANCELLED", "FAILED"}

pytestmark = requires_postgres


def _sweeper(database_url: str, actor: str, ready, go, results) -> None:
    """One process: its own app on the test database, sweeping with a fixed clock once told to go."""
    try:
        from web import create_app

        app = create_app({"DATABASE_URL": database_url, "SCHEDULER_ENABLED": False, "CLOCK": lambda: SWEEP_NOW})
        with app.app_context():
            db.session.execute(select(1))
            db.session.rollback()
            ready.put(actor)
            if not go.wait(WAIT_SECONDS):
                results.put((actor, "no start signal", []))
                return
            cancelled = []
            for _ in range(3):  # later passes find what the first could not take (rows a capture held)
                result = sweep(now=SWEEP_NOW, timeout_minutes=30, actor=actor, batch_size=SWEEP_BATCH)
                cancelled.extend(p.transaction_id for p in result.cancelled)
            results.put((actor, "ok", cancelled))
    except BaseException:
        results.put((actor, traceback.format_exc(), []))


def _seed(app, client) -> tuple[dict, list[list[dict]]]:
    """A customer with CARTS carts of one item, each with PAYMENTS_PER_CART open payments."""
    user = register(client)
    service = make_service(app, client)
    carts = []
    for _ in range(CARTS):
        cart = client.post("/api/cart/carts/", headers=user["headers"],
                           json={"selected_date": future_date(app), "selected_time": "10:30"}).json
        added = client.post(f"/api/cart/carts/{cart['cart_id']}/items/", headers=user["headers"],
                            json={"service_id": service["service_id"], "quantity": 1})
        assert added.status_code == 201, added.json
        payments = []
        for _ in range(PAYMENTS_PER_CART):
            response = start_payment(client, user, cart["cart_id"])
            assert response.status_code == 201, response.json
            payments.append(response.json)
        carts.append(payments)
    return user, carts


def _confirmer(app, client, user, payments, go, outcomes, errors) -> None:
    try:
        if not go.wait(WAIT_SECONDS):
            errors.append("confirmer got no start signal")
            return
        for payment in payments:
            provider_payment_id = f"pay_{payment['transaction_id']}"
            response = client.post(f"/api/payments/{payment['transaction_id']}/confirm/", headers=user["headers"],
                                   json={"provider_payment_id": provider_payment_id,
                                         "signature": signature(app, payment["provider_order_id"],
                                                                provider_payment_id)})
            outcomes[payment["transaction_id"]] = (response.status_code, (response.get_json() or {}).get("reason"))
    except BaseException:
        errors.append(traceback.format_exc())


def test_concurrent_sweepers_and_captures_give_every_payment_exactly_one_ending(app, client, database_url):
    user, carts = _seed(app, client)
    all_txns = {p["transaction_id"] for payments in carts for p in payments}
    assert len(all_txns) == CARTS * PAYMENTS_PER_CART
    # the captures run on the test clock (12:00, the payments are fresh to them); the sweepers an hour later
    to_confirm = [payments[i % PAYMENTS_PER_CART] for i, payments in enumerate(carts[:CONFIRMED_CARTS])]

    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    processes = [ctx.Process(target=_sweeper, args=(database_url, f"sweeper:{n}", ready, go, results), daemon=True)
                 for n in range(SWEEPERS)]
    outcomes: dict[str, tuple[int, str | None]] = {}
    errors: list[str] = []
    threads = [threading.Thread(target=_confirmer, args=(app, client, user, to_confirm[n::4], go, outcomes, errors),
                                daemon=True) for n in range(4)]
    reports = []
    try:
        for process in processes:
            process.start()
        for thread in threads:
            thread.start()
        for _ in processes:
            ready.get(timeout=WAIT_SECONDS)  # every sweeper has built its app and connected
        go.set()
        for _ in processes:
            reports.append(results.get(timeout=WAIT_SECONDS))
        for thread in threads:
            thread.join(timeout=WAIT_SECONDS)
    finally:
        go.set()  # never leave a child or a thread waiting
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)

    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    assert [status for _, status, _ in reports] == ["ok"] * SWEEPERS, reports
    assert [process.exitcode for process in processes] == [0] * SWEEPERS

    # Whatever a capture held when the sweepers passed is swept now; the assertions below hold either way.
    with app.app_context():
        straggler = sweep(now=SWEEP_NOW, timeout_minutes=30, actor="sweeper:final")
    cancelled_by_sweepers = [txn for _, _, txns in reports for txn in txns] + [
        p.transaction_id for p in straggler.cancelled]

    with app.app_context():
        status = dict(db.session.execute(select(Payment.transaction_id, Payment.status)).all())
        history = db.session.execute(
            select(TransitionRecord.entity_id, TransitionRecord.to_state, TransitionRecord.trigger,
                   TransitionRecord.accepted).where(TransitionRecord.entity == "payment")).all()
        bookings = db.session.execute(select(Booking.transaction_id, Booking.cart_id)).all()
        cart_status = dict(db.session.execute(select(Cart.id, Cart.status)).all())
        payment_cart = dict(db.session.execute(select(Payment.transaction_id, Payment.cart_id)).all())

    assert set(status) == all_txns
    assert {s for s in status.values()} <= TERMINAL, Counter(status.values())

    endings = Counter(txn for txn, to_state, _, accepted in history if accepted and to_state in TERMINAL)
    assert {txn: n for txn, n in endings.items() if n != 1} == {}
    assert set(endings) == all_txns

    timeouts = Counter(txn for txn, _, trigger, accepted in history if accepted and trigger == "timeout")
    assert {txn: n for txn, n in timeouts.items() if n != 1} == {}
    assert sorted(cancelled_by_sweepers) == sorted(timeouts)  # each cancelled by exactly one sweeper, recorded once
    assert len(cancelled_by_sweepers) == len(set(cancelled_by_sweepers))

    succeeded = {txn for txn, s in status.items() if s == "SUCCESS"}
    assert not succeeded & set(timeouts), "a confirmed payment was cancelled"
    assert all(status[txn] == "CANCELLED" for txn in timeouts)
    for txn, (code, reason) in outcomes.items():
        if code == 200:
            assert status[txn] == "SUCCESS", txn
        else:
            assert (code, reason) == (409, "payment_not_pending"), (txn, code, reason)
            assert status[txn] == "CANCELLED"
            assert any(t == txn and not accepted and trigger == "succeed"
                       for t, _, trigger, accepted in history), "a refused capture was not recorded"
    assert set(outcomes) == {p["transaction_id"] for p in to_confirm}
    assert succeeded <= set(outcomes)  # only what a customer confirmed succeeded

    assert sorted(txn for txn, _ in bookings) == sorted(succeeded)
    booked_carts = Counter(cart_id for _, cart_id in bookings)
    assert set(booked_carts.values()) <= {1}
    for cart_id, state in cart_status.items():
        assert state == ("CONVERTED" if cart_id in booked_carts else "ACTIVE"), cart_id
    assert all(payment_cart[txn] == cart_id for txn, cart_id in bookings)
