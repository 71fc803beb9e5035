"""Confirming a payment: signature, booking, conversion, supersede, replay, refusal (SPEC §1, §3)."""

import pytest

from persistence.models import Booking
from tests.builders import confirm, make_cart, make_payment, register, send_webhook, signature, start_payment
from tests.conftest import both_gateways
from tests.integration.support import (
    FailingGateway,
    assert_json_error,
    cart_row,
    count,
    history_rows,
    make_booking,
    payment_row,
    snapshot,
    statements_failing,
)


@both_gateways
def test_a_valid_confirmation_books_the_cart(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user, items=2, quantity=2, price="100.00")
    payment = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=7)

    response = confirm(app, client, user, payment, provider_payment_id="pay_ABC123")

    assert response.status_code == 200
    body = response.json
    assert set(body) == {"payment", "booking", "cart"}
    booking_id = body["booking"]["booking_id"]
    assert body["payment"]["status"] == "SUCCESS"
    assert body["payment"]["booking_id"] == booking_id
    assert body["payment"]["updated_at"] == "2030-01-15T12:07:00.000Z"
    assert body["payment"]["created_at"] == "2030-01-15T12:00:00.000Z"
    assert body["booking"] == {
        "booking_id": booking_id, "cart_id": cart["cart_id"], "transaction_id": payment["transaction_id"],
        "status": "CONFIRMED", "selected_date": cart["selected_date"], "selected_time": cart["selected_time"],
        "items": cart["items"], "total": "400.00", "created_at": "2030-01-15T12:07:00.000Z",
    }
    assert body["cart"]["status"] == "CONVERTED"
    assert body["cart"]["cart_id"] == cart["cart_id"]
    assert body["cart"]["items"] == cart["items"]
    assert payment_row(app, payment["transaction_id"]).provider_payment_id == "pay_ABC123"
    assert cart_row(app, cart["cart_id"]).status == "CONVERTED"


@both_gateways
def test_confirming_records_succeed_and_convert_by_the_customer(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])

    confirm(app, client, user, payment)

    actor = f"user:{user['user_id']}"
    assert history_rows(app, "payment", payment["transaction_id"]) == [
        ("INITIATED", "PENDING", "submit", actor, True), ("PENDING", "SUCCESS", "succeed", actor, True)]
    assert history_rows(app, "cart", cart["cart_id"]) == [("ACTIVE", "CONVERTED", "convert", actor, True)]


def test_confirming_supersedes_every_other_open_payment_of_the_cart(app, client, make_app):
    user = register(client)
    cart = make_cart(app, client, user)
    first = make_payment(app, client, user, cart["cart_id"])
    paid = make_payment(app, client, user, cart["cart_id"])
    third = make_payment(app, client, user, cart["cart_id"])
    initiated = start_payment(make_app(GATEWAY=FailingGateway()).test_client(), user, cart["cart_id"]).json
    cancelled = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{cancelled['transaction_id']}/cancel/", headers=user["headers"])
    other_cart_payment = make_payment(app, client, user)

    response = confirm(app, client, user, paid)

    assert response.status_code == 200
    actor = f"user:{user['user_id']}"
    for sibling in (first, third):
        assert payment_row(app, sibling["transaction_id"]).status == "CANCELLED"
        assert history_rows(app, "payment", sibling["transaction_id"])[-1] == (
            "PENDING", "CANCELLED", "supersede", actor, True)
    assert payment_row(app, initiated["transaction_id"]).status == "CANCELLED"
    assert history_rows(app, "payment", initiated["transaction_id"]) == [
        ("INITIATED", "CANCELLED", "supersede", actor, True)]
    assert [h[2] for h in history_rows(app, "payment", cancelled["transaction_id"])] == ["submit", "cancel"]
    assert payment_row(app, other_cart_payment["transaction_id"]).status == "PENDING"
    assert [h[2] for h in history_rows(app, "payment", other_cart_payment["transaction_id"])] == ["submit"]


@both_gateways
def test_confirming_twice_returns_the_same_booking(app, client, clock):
    user = register(client)
    payment = make_payment(app, client, user)
    first = confirm(app, client, user, payment)
    clock.advance(minutes=10)
    after_first = snapshot(app)

    again = confirm(app, client, user, payment)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json == first.json
    assert snapshot(app) == after_first
    assert count(app, Booking) == 1


@both_gateways
@pytest.mark.parametrize("bad", ["wrong", "0" * 64, "for-another-payment-id", ""])
def test_a_bad_signature_is_refused_and_changes_nothing(app, client, bad):
    user = register(client)
    payment = make_payment(app, client, user)
    before = snapshot(app)
    sig = signature(app, payment["provider_order_id"], "pay_other") if bad == "for-another-payment-id" else bad

    response = confirm(app, client, user, payment, provider_payment_id="pay_1", sig=sig)

    assert response.status_code == 400
    if bad:
        assert_json_error(response, 400, reason="invalid_signature")
    assert snapshot(app) == before
    assert payment_row(app, payment["transaction_id"]).status == "PENDING"


@both_gateways
def test_a_signature_for_another_order_is_refused(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    other = make_payment(app, client, user)
    before = snapshot(app)

    response = confirm(app, client, user, payment, provider_payment_id="pay_1",
                       sig=signature(app, other["provider_order_id"], "pay_1"))

    assert_json_error(response, 400, reason="invalid_signature")
    assert snapshot(app) == before


def test_a_signature_made_with_another_secret_is_refused(app, client, make_app):
    user = register(client)
    payment = make_payment(app, client, user)
    other_app = make_app(GATEWAY_SECRET="someone-elses-secret")
    before = snapshot(app)

    response = confirm(app, client, user, payment, provider_payment_id="pay_1",
                       sig=signature(other_app, payment["provider_order_id"], "pay_1"))

    assert_json_error(response, 400, reason="invalid_signature")
    assert snapshot(app) == before


@both_gateways
def test_confirming_a_cancelled_payment_is_refused_and_recorded(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])
    clock.advance(minutes=2)

    response = confirm(app, client, user, payment, provider_payment_id="pay_late")

    assert_json_error(response, 409, reason="payment_not_pending")
    history = client.get(f"/api/payments/{payment['transaction_id']}/history/", headers=user["headers"]).json
    assert history[-1] == {"from": "CANCELLED", "to": "SUCCESS", "trigger": "succeed",
                           "actor": f"user:{user['user_id']}", "at": "2030-01-15T12:02:00.000Z",
                           "accepted": False}
    assert [h["accepted"] for h in history] == [True, True, False]
    assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"
    assert count(app, Booking) == 0


@both_gateways
def test_confirming_a_superseded_payment_is_refused_and_recorded_for_a_refund(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    loser = make_payment(app, client, user, cart["cart_id"])
    winner = make_payment(app, client, user, cart["cart_id"])
    booked = confirm(app, client, user, winner, provider_payment_id="pay_winner").json

    response = confirm(app, client, user, loser, provider_payment_id="pay_loser")

    assert_json_error(response, 409, reason="payment_not_pending")
    assert history_rows(app, "payment", loser["transaction_id"])[-1] == (
        "CANCELLED", "SUCCESS", "succeed", f"user:{user['user_id']}", False)
    assert count(app, Booking) == 1
    bookings = client.get("/api/bookings/", headers=user["headers"]).json
    assert [b["booking_id"] for b in bookings] == [booked["booking"]["booking_id"]]


@both_gateways
def test_confirming_a_failed_payment_is_refused_and_recorded(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    send_webhook(app, client, {"event_id": "evt-1", "event": "payment.failed",
                               "provider_order_id": payment["provider_order_id"], "provider_payment_id": "pay_1"})

    response = confirm(app, client, user, payment, provider_payment_id="pay_1")

    assert_json_error(response, 409, reason="payment_not_pending")
    assert history_rows(app, "payment", payment["transaction_id"])[-1][1:] == (
        "SUCCESS", "succeed", f"user:{user['user_id']}", False)
    assert payment_row(app, payment["transaction_id"]).status == "FAILED"


@both_gateways
def test_a_second_capture_with_another_payment_id_is_refused_and_recorded(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    first = confirm(app, client, user, payment, provider_payment_id="pay_first")

    response = confirm(app, client, user, payment, provider_payment_id="pay_second")

    assert first.status_code == 200
    assert_json_error(response, 409, reason="payment_not_pending")
    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "SUCCESS", "SUCCESS", "succeed", f"user:{user['user_id']}", False)
    assert payment_row(app, payment["transaction_id"]).provider_payment_id == "pay_first"
    assert count(app, Booking) == 1


def test_a_refused_capture_keeps_what_a_refund_needs(app, client):
    from sqlalchemy import select

    from persistence.db import db
    from persistence.models import TransitionRecord

    user = register(client)
    payment = make_payment(app, client, user)
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])

    confirm(app, client, user, payment, provider_payment_id="pay_refund_me")

    with app.app_context():
        refused = db.session.scalar(select(TransitionRecord).where(TransitionRecord.accepted.is_(False)))
        assert refused.entity_id == payment["transaction_id"]
        assert refused.detail == {"provider_order_id": payment["provider_order_id"],
                                  "provider_payment_id": "pay_refund_me", "amount": payment["amount"],
                                  "currency": "INR"}


def test_a_payment_the_gateway_never_accepted_cannot_be_confirmed(app, client, make_app):
    user = register(client)
    cart = make_cart(app, client, user)
    txn = start_payment(make_app(GATEWAY=FailingGateway()).test_client(), user, cart["cart_id"]).json[
        "transaction_id"]
    before = snapshot(app)

    response = client.post(f"/api/payments/{txn}/confirm/", headers=user["headers"],
                           json={"provider_payment_id": "pay_1", "signature": "ab" * 32})

    assert_json_error(response, 400, reason="invalid_signature")
    assert snapshot(app) == before


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({}, {"provider_payment_id", "signature"}),
    ({"provider_payment_id": "pay_1"}, {"signature"}),
    ({"signature": "abc"}, {"provider_payment_id"}),
    ({"provider_payment_id": 1, "signature": "abc"}, {"provider_payment_id"}),
    ({"provider_payment_id": "pay_1", "signature": True}, {"signature"}),
    ({"provider_payment_id": "pay_1", "signature": "abc", "status": "SUCCESS"}, {"status"}),
])
def test_a_confirmation_with_bad_fields_is_a_400_and_changes_nothing(app, client, body, bad_fields):
    user = register(client)
    payment = make_payment(app, client, user)
    before = snapshot(app)

    response = client.post(f"/api/payments/{payment['transaction_id']}/confirm/", headers=user["headers"],
                           json=body)

    assert set(assert_json_error(response, 400)["fields"]) == bad_fields
    assert snapshot(app) == before


def test_confirming_an_unknown_payment_is_a_404(app, client):
    user = register(client)

    response = client.post("/api/payments/TXN000000000000/confirm/", headers=user["headers"],
                           json={"provider_payment_id": "pay_1", "signature": "abc"})

    assert_json_error(response, 404)


def test_another_user_cannot_confirm_a_payment_even_with_a_valid_signature(app, client):
    owner = register(client)
    intruder = register(client)
    payment = make_payment(app, client, owner)
    before = snapshot(app)

    response = confirm(app, client, intruder, payment)

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_a_replay_by_another_user_is_not_found_either(app, client):
    booked = make_booking(app, client)
    intruder = register(client)
    before = snapshot(app)

    response = confirm(app, client, intruder, booked["payment"])

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_a_booking_made_by_confirm_is_listed_for_its_owner(app, client):
    booked = make_booking(app, client)

    response = client.get(f"/api/bookings/{booked['booking']['booking_id']}/", headers=booked["user"]["headers"])

    assert response.status_code == 200
    assert response.json == booked["booking"]


def test_a_capture_that_fails_half_way_leaves_nothing_behind(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    sibling = make_payment(app, client, user, cart["cart_id"])
    before = snapshot(app)

    # On SQLite the cart, the payment and the sibling are written by then; on PostgreSQL the
    # booking is part of the capture's one statement, which therefore never runs.
    with statements_failing(app, "INSERT INTO bookings", RuntimeError("the database went away at the booking")):
        response = confirm(app, client, user, payment)

    assert_json_error(response, 500)
    assert snapshot(app) == before
    assert payment_row(app, sibling["transaction_id"]).status == "PENDING"
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"


def test_a_booking_row_that_already_exists_for_the_cart_makes_the_whole_capture_roll_back(app, client):
    """The unique constraint on bookings.cart_id holds even if code were wrong; the capture then undoes itself."""
    from datetime import date, time
    from decimal import Decimal

    from persistence.db import db

    user = register(client)
    cart = make_cart(app, client, user)
    earlier = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{earlier['transaction_id']}/cancel/", headers=user["headers"])
    payment = make_payment(app, client, user, cart["cart_id"])
    sibling = make_payment(app, client, user, cart["cart_id"])
    with app.app_context():
        db.session.add(Booking(id="11111111-1111-1111-1111-111111111111", cart_id=cart["cart_id"],
                               transaction_id=earlier["transaction_id"], user_id=user["user_id"],
                               status="CONFIRMED", selected_date=date(2030, 1, 22), selected_time=time(10, 30),
                               total=Decimal("2500.00"), created_at=app.config["CLOCK"]()))
        db.session.commit()
    cart_history = history_rows(app, "cart", cart["cart_id"])

    response = confirm(app, client, user, payment)

    assert response.status_code == 409
    assert payment_row(app, payment["transaction_id"]).status == "PENDING"
    assert payment_row(app, sibling["transaction_id"]).status == "PENDING"
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"
    assert history_rows(app, "cart", cart["cart_id"]) == cart_history
    assert [h[4] for h in history_rows(app, "payment", sibling["transaction_id"])] == [True]
    assert count(app, Booking) == 1
