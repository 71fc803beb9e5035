"""Races over HTTP against gunicorn with several workers on PostgreSQL: one cart, one booking, one payment."""

import uuid
from collections import Counter

import pytest
from sqlalchemy import text

from tests.e2e.helpers import at_once, consistency_errors, rows, statuses

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _service_stays_consistent(live):
    """After every test: no request hit the generic 500 handler, and the database is consistent."""
    yield
    assert live.server.unhandled_errors() == []
    assert consistency_errors(live.engine) == []


def accepted(history: list[dict], trigger: str) -> list[dict]:
    return [row for row in history if row["trigger"] == trigger and row["accepted"]]


def test_the_same_payment_confirmed_twenty_times_at_once_gives_twenty_times_the_same_booking(live):
    api = live.api
    user = api.register()
    cart_id = api.make_cart(user)
    payment = api.make_payment(user, cart_id)

    answers = at_once([lambda: api.confirm(user, payment)] * 20)

    assert statuses(answers) == [200] * 20, answers
    assert len({a.body["booking"]["booking_id"] for a in answers}) == 1
    assert {(a.body["payment"]["status"], a.body["cart"]["status"]) for a in answers} == {("SUCCESS", "CONVERTED")}
    assert len(rows(live.engine, "SELECT id FROM bookings WHERE cart_id = :c", c=cart_id)) == 1
    history = api.payment_history(user, payment["transaction_id"])
    assert len(accepted(history, "succeed")) == 1
    assert [row for row in history if not row["accepted"]] == []


def test_eight_payments_of_one_cart_confirmed_at_once_make_one_booking_and_supersede_seven(live):
    api = live.api
    user = api.register()
    cart_id = api.make_cart(user)
    payments = [api.make_payment(user, cart_id) for _ in range(8)]

    answers = at_once([lambda p=p: api.confirm(user, p, f"pay_{p['transaction_id']}") for p in payments])

    assert statuses(answers) == [200] + [409] * 7, answers
    assert {a.body["reason"] for a in answers if a.status == 409} == {"payment_not_pending"}
    winner = next(p for p, a in zip(payments, answers) if a.status == 200)
    assert len(rows(live.engine, "SELECT id FROM bookings WHERE cart_id = :c", c=cart_id)) == 1
    assert api.bookings(user)[0]["transaction_id"] == winner["transaction_id"]
    for loser in (p for p in payments if p is not winner):
        assert api.payment(user, loser["transaction_id"])["status"] == "CANCELLED"
        history = api.payment_history(user, loser["transaction_id"])
        assert [(r["from"], r["to"]) for r in accepted(history, "supersede")] == [("PENDING", "CANCELLED")]
        # The loser's customer was charged: the refused capture is recorded, not lost.
        refused = [r for r in history if not r["accepted"]]
        assert [(r["trigger"], r["from"], r["to"]) for r in refused] == [("succeed", "CANCELLED", "SUCCESS")]


def test_the_same_idempotency_key_sent_ten_times_at_once_creates_one_payment(live):
    api = live.api
    user = api.register()
    cart_id = api.make_cart(user)
    key = f"key-{uuid.uuid4().hex}"

    answers = at_once([lambda: api.start_payment(user, cart_id, key)] * 10)

    assert set(statuses(answers)) <= {201, 409}, answers
    created = [a.body for a in answers if a.status == 201]
    assert created, answers
    assert all(body == created[0] for body in created)
    assert {a.body["reason"] for a in answers if a.status == 409} <= {"idempotency_key_in_progress"}
    payments = rows(live.engine, "SELECT transaction_id FROM payments WHERE cart_id = :c", c=cart_id)
    assert [p.transaction_id for p in payments] == [created[0]["transaction_id"]]
    # Once the first answer is stored, the key replays it.
    assert api.start_payment(user, cart_id, key).body == created[0]


def test_a_key_whose_first_request_died_before_answering_is_answered_from_its_payment(live):
    api = live.api
    user = api.register()
    cart_id = api.make_cart(user)
    key = f"key-{uuid.uuid4().hex}"
    first = api.start_payment(user, cart_id, key)
    assert first.status == 201, first
    # As if the worker had been killed after recording the payment and before storing its answer,
    # long enough ago that no live request can still be holding the key.
    with live.engine.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, "
                          "created_at = created_at - interval '10 minutes' WHERE key = :k"), {"k": key})

    answers = at_once([lambda: api.start_payment(user, cart_id, key)] * 3)

    assert statuses(answers) == [201] * 3, answers
    assert {a.body["transaction_id"] for a in answers} == {first.body["transaction_id"]}
    assert answers[0].body["status"] == "PENDING"
    assert len(rows(live.engine, "SELECT 1 FROM payments WHERE cart_id = :c", c=cart_id)) == 1


def test_a_webhook_and_the_customer_confirming_the_same_payment_at_once_make_one_booking(live):
    api = live.api
    user = api.register()
    payments = [api.make_payment(user, api.make_cart(user)) for _ in range(5)]

    calls = []
    for p in payments:
        calls += [lambda p=p: api.confirm(user, p, "pay_same"), lambda p=p: api.webhook("payment.captured", p, "pay_same")]
    answers = at_once(calls)

    assert statuses(answers) == [200] * 10, answers
    for p, confirmed, hooked in zip(payments, answers[0::2], answers[1::2]):
        assert confirmed.body["payment"]["status"] == "SUCCESS"
        assert hooked.body["outcome"] in {"captured", "already_captured"}
        history = api.payment_history(user, p["transaction_id"])
        assert len(accepted(history, "succeed")) == 1
        assert [r for r in history if not r["accepted"]] == []
    assert len(api.bookings(user)) == 5


def test_a_webhook_delivered_ten_times_at_once_is_applied_once(live):
    api = live.api
    user = api.register()
    payment = api.make_payment(user, api.make_cart(user))
    event_id = f"evt_{uuid.uuid4().hex}"

    answers = at_once([lambda: api.webhook("payment.captured", payment, event_id=event_id)] * 10)

    assert statuses(answers) == [200] * 10, answers
    assert Counter(a.body["outcome"] for a in answers) == {"captured": 1, "duplicate": 9}
    assert [tuple(r) for r in rows(live.engine, "SELECT outcome FROM webhook_events WHERE event_id = :e",
                                   e=event_id)] == [("captured",)]
    assert api.payment(user, payment["transaction_id"])["status"] == "SUCCESS"
    assert len(api.bookings(user)) == 1


def test_one_capture_reported_under_several_event_ids_at_once_is_captured_once(live):
    api = live.api
    user = api.register()
    payment = api.make_payment(user, api.make_cart(user))

    answers = at_once([lambda: api.webhook("payment.captured", payment)] * 6)

    assert statuses(answers) == [200] * 6, answers
    assert Counter(a.body["outcome"] for a in answers) == {"captured": 1, "already_captured": 5}
    assert len(accepted(api.payment_history(user, payment["transaction_id"]), "succeed")) == 1


def test_a_failed_event_after_the_capture_changes_nothing(live):
    api = live.api
    user = api.register()
    payment = api.make_payment(user, api.make_cart(user))
    assert api.webhook("payment.captured", payment).body["outcome"] == "captured"

    late = api.webhook("payment.failed", payment)

    assert late.status == 200 and late.body["outcome"] == "ignored", late
    assert api.payment(user, payment["transaction_id"])["status"] == "SUCCESS"
    assert len(api.bookings(user)) == 1
    assert [r["trigger"] for r in api.payment_history(user, payment["transaction_id"])] == ["submit", "succeed"]


def test_a_capture_after_the_failed_event_is_refused_and_recorded(live):
    api = live.api
    user = api.register()
    payment = api.make_payment(user, api.make_cart(user))
    assert api.webhook("payment.failed", payment).body["outcome"] == "failed"

    late = api.webhook("payment.captured", payment)
    confirmed = api.confirm(user, payment)

    assert late.status == 200 and late.body["outcome"] == "refused", late
    assert confirmed.status == 409 and confirmed.body["reason"] == "payment_not_pending", confirmed
    assert api.bookings(user) == []
    history = api.payment_history(user, payment["transaction_id"])
    assert [(r["trigger"], r["accepted"]) for r in history] == [
        ("submit", True), ("fail", True), ("succeed", False), ("succeed", False)]


def test_captured_and_failed_events_racing_leave_either_a_booking_or_a_recorded_refusal(live):
    api = live.api
    user = api.register()
    payments = [api.make_payment(user, api.make_cart(user)) for _ in range(6)]

    calls = []
    for p in payments:
        calls += [lambda p=p: api.webhook("payment.captured", p), lambda p=p: api.webhook("payment.failed", p)]
    answers = at_once(calls)

    assert statuses(answers) == [200] * 12, answers
    booked = {b["transaction_id"] for b in api.bookings(user)}
    for p, captured, failed in zip(payments, answers[0::2], answers[1::2]):
        status = api.payment(user, p["transaction_id"])["status"]
        history = api.payment_history(user, p["transaction_id"])
        if status == "SUCCESS":
            assert (captured.body["outcome"], failed.body["outcome"]) == ("captured", "ignored")
            assert p["transaction_id"] in booked
        else:
            assert status == "FAILED"
            assert (captured.body["outcome"], failed.body["outcome"]) == ("refused", "failed")
            assert p["transaction_id"] not in booked
            assert [(r["trigger"], r["accepted"]) for r in history if r["trigger"] == "succeed"] == [
                ("succeed", False)]


def test_a_payment_started_while_another_is_confirmed_is_refused_or_superseded_never_left_open(live):
    """SPEC §1 Concurrency: thirty rounds of start-payment and confirm sent together on one cart each."""
    api = live.api
    user = api.register()
    outcomes = Counter()
    for _ in range(30):
        cart_id = api.make_cart(user)
        first = api.make_payment(user, cart_id)

        started, confirmed = at_once([lambda: api.start_payment(user, cart_id), lambda: api.confirm(user, first)])

        assert confirmed.status == 200, confirmed
        assert started.status in (201, 409), started
        if started.status == 409:
            assert started.body["reason"] == "cart_not_active", started
        others = rows(live.engine, "SELECT transaction_id, status FROM payments WHERE cart_id = :c AND "
                                   "transaction_id <> :t", c=cart_id, t=first["transaction_id"])
        # Started before the capture locked the cart: superseded by it; after: refused before it was recorded.
        assert [p.status for p in others] in ([], ["CANCELLED"]), (started, others)
        for other in others:
            history = api.payment_history(user, other.transaction_id)
            assert [r["trigger"] for r in history if r["to"] == "CANCELLED"] == ["supersede"], history
        outcomes[(started.status, len(others))] += 1
    open_on_converted = rows(live.engine, """
        SELECT p.transaction_id FROM payments p JOIN carts c ON c.id = p.cart_id
        WHERE c.status = 'CONVERTED' AND p.status IN ('INITIATED', 'PENDING')""")
    assert open_on_converted == [], outcomes
