"""The one sweep (persistence.sweep): stale open payments go through `timeout`, in batches, exactly once."""

from datetime import UTC, datetime, timedelta

from persistence.db import db
from persistence.sweep import SWEEP_ACTOR, stale_open_payments, sweep
from tests.builders import make_cart, make_payment, register, send_webhook
from tests.integration.support import FailingGateway, history_rows, make_booking, payment_row, snapshot

START = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)  # the FakeClock's start


def _run(app, **kwargs):
    with app.app_context():
        kwargs.setdefault("now", app.config["CLOCK"]())
        kwargs.setdefault("timeout_minutes", 30)
        return sweep(**kwargs)


def _payments(app, client, user, cart_id, n):
    return [make_payment(app, client, user, cart_id)["transaction_id"] for _ in range(n)]


def test_every_stale_payment_is_cancelled_in_batches_with_one_history_row_each(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    other_cart = make_cart(app, client, user)
    txns = _payments(app, client, user, cart["cart_id"], 3) + _payments(app, client, user, other_cart["cart_id"], 2)
    clock.advance(minutes=45)

    result = _run(app, actor="test:sweeper", batch_size=2)

    assert sorted(p.transaction_id for p in result.cancelled) == sorted(txns)
    assert result.batches == 3  # 2 + 2 + 1
    assert set(result.cart_ids) == {cart["cart_id"], other_cart["cart_id"]}
    assert len(result.cart_ids) == 2
    for txn in txns:
        assert payment_row(app, txn).status == "CANCELLED"
        assert history_rows(app, "payment", txn) == [
            ("INITIATED", "PENDING", "submit", f"user:{user['user_id']}", True),
            ("PENDING", "CANCELLED", "timeout", "test:sweeper", True),
        ]


def test_a_sweep_with_an_exact_multiple_of_the_batch_size_ends_on_an_empty_batch(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    _payments(app, client, user, cart["cart_id"], 4)
    clock.advance(hours=1)

    result = _run(app, batch_size=2)

    assert (len(result.cancelled), result.batches) == (4, 3)


def test_the_sweep_rests_after_every_batch_but_the_last_in_proportion_to_how_long_it_took(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    _payments(app, client, user, cart["cart_id"], 5)
    clock.advance(hours=1)
    ticks, rests = iter(range(100)), []  # each reading of the clock is one second later: every batch takes 1 s

    result = _run(app, batch_size=2, share=0.25, sleep=rests.append, monotonic=lambda: float(next(ticks)))

    assert result.batches == 3  # 2 + 2 + 1: the short one ends the sweep without a rest
    assert result.batch_holds_s == [1.0, 1.0, 1.0]
    assert rests == [3.0, 3.0]


def test_the_dry_run_and_the_result_list_the_payments_newest_first_then_by_transaction_id(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    older = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=3)
    newer = sorted(_payments(app, client, user, cart["cart_id"], 3))  # made at the same instant
    clock.advance(hours=1)
    expected = [*((txn, cart["cart_id"], START + timedelta(minutes=3)) for txn in newer),
                (older["transaction_id"], cart["cart_id"], START)]
    with app.app_context():
        listed = stale_open_payments(clock(), 30)

    result = _run(app, batch_size=1)

    assert [(p.transaction_id, p.cart_id, p.created_at) for p in listed] == expected
    assert [(p.transaction_id, p.cart_id, p.created_at) for p in result.cancelled] == expected


def test_the_default_actor_is_the_sweeper(app, client, clock):
    user = register(client)
    payment = make_payment(app, client, user)
    clock.advance(hours=1)

    _run(app)

    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "PENDING", "CANCELLED", "timeout", SWEEP_ACTOR, True)


def test_a_payment_is_stale_exactly_at_the_timeout_and_not_a_millisecond_before(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    at_timeout = make_payment(app, client, user, cart["cart_id"])     # 12:00:00.000
    clock.advance(milliseconds=1)
    just_fresh = make_payment(app, client, user, cart["cart_id"])     # 12:00:00.001
    clock.set(START + timedelta(minutes=30))

    result = _run(app)

    assert [p.transaction_id for p in result.cancelled] == [at_timeout["transaction_id"]]
    assert payment_row(app, at_timeout["transaction_id"]).status == "CANCELLED"
    assert payment_row(app, just_fresh["transaction_id"]).status == "PENDING"
    assert len(history_rows(app, "payment", just_fresh["transaction_id"])) == 1


def test_fresh_payments_are_left_alone(app, client, clock):
    user = register(client)
    payment = make_payment(app, client, user)
    clock.advance(minutes=29, seconds=59)
    before = snapshot(app)

    result = _run(app)

    assert result.cancelled == []
    assert result.batches == 1
    assert snapshot(app) == before
    assert payment_row(app, payment["transaction_id"]).status == "PENDING"


def test_closed_payments_are_never_touched(app, client, clock):
    booked = make_booking(app, client)  # one SUCCESS payment
    user = register(client)
    cart = make_cart(app, client, user)
    cancelled = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{cancelled['transaction_id']}/cancel/", headers=user["headers"])
    failed = make_payment(app, client, user, cart["cart_id"])
    send_webhook(app, client, {"event_id": "evt_fail", "event": "payment.failed",
                               "provider_order_id": failed["provider_order_id"], "provider_payment_id": "pay_x"})
    clock.advance(days=3)
    before = snapshot(app)

    result = _run(app)

    assert result.cancelled == []
    assert snapshot(app) == before
    assert payment_row(app, booked["payment"]["transaction_id"]).status == "SUCCESS"
    assert payment_row(app, failed["transaction_id"]).status == "FAILED"


def test_an_initiated_payment_left_by_a_gateway_failure_times_out_from_initiated(make_app, app, clock):
    failing = make_app(GATEWAY=FailingGateway())
    client = failing.test_client()
    user = register(client)
    cart = make_cart(failing, client, user)
    response = client.post("/api/payments/", json={"cart_id": cart["cart_id"]}, headers=user["headers"])
    assert response.status_code == 502
    clock.advance(minutes=30)

    result = _run(failing, actor="test:sweeper")

    [stale] = result.cancelled
    assert payment_row(failing, stale.transaction_id).status == "CANCELLED"
    assert history_rows(failing, "payment", stale.transaction_id) == [
        ("INITIATED", "CANCELLED", "timeout", "test:sweeper", True)]


def test_another_threshold_can_be_given(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    twenty = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=10)
    ten = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=10)

    result = _run(app, timeout_minutes=15)

    assert [p.transaction_id for p in result.cancelled] == [twenty["transaction_id"]]
    assert payment_row(app, ten["transaction_id"]).status == "PENDING"


def test_a_fractional_threshold_is_exact_to_the_second(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    clock.advance(seconds=29)

    assert _run(app, timeout_minutes=0.5).cancelled == []
    clock.advance(seconds=1)
    assert [p.transaction_id for p in _run(app, timeout_minutes=0.5).cancelled] == [payment["transaction_id"]]


def test_running_the_sweep_twice_cancels_nothing_the_second_time(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    _payments(app, client, user, cart["cart_id"], 3)
    clock.advance(hours=1)
    first = _run(app, batch_size=2)
    after_first = snapshot(app)

    second = _run(app, batch_size=2)

    assert len(first.cancelled) == 3
    assert second.cancelled == []
    assert snapshot(app) == after_first


def test_the_dry_run_query_lists_what_the_sweep_would_cancel_and_changes_nothing(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    stale = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=20)
    make_payment(app, client, user, cart["cart_id"])  # fresh
    clock.advance(minutes=10)
    before = snapshot(app)

    with app.app_context():
        listed = stale_open_payments(clock(), 30)
        db.session.rollback()

    assert [(p.transaction_id, p.cart_id, p.created_at) for p in listed] == [
        (stale["transaction_id"], cart["cart_id"], START)]
    assert snapshot(app) == before
    assert [p.transaction_id for p in _run(app).cancelled] == [stale["transaction_id"]]


def test_batches_sized_by_time_still_cancel_every_stale_payment_once(app, client, clock, monkeypatch):
    # Every batch "takes too long", so each next one is smaller: 4, 2 and 1 payments, then an empty batch.
    monkeypatch.setattr("persistence.sweep.BATCH_SIZE", 4)
    monkeypatch.setattr("persistence.sweep.MIN_BATCH", 1)
    monkeypatch.setattr("persistence.sweep.HOLD_TARGET_S", 1e-9)
    user = register(client)
    cart = make_cart(app, client, user)
    txns = _payments(app, client, user, cart["cart_id"], 7)
    clock.advance(minutes=45)

    result = _run(app)

    assert sorted(p.transaction_id for p in result.cancelled) == sorted(txns)
    assert result.batches == 4
    for txn in txns:
        assert [row[2] for row in history_rows(app, "payment", txn)] == ["submit", "timeout"]
