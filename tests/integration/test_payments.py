"""Starting, reading, cancelling payments; Idempotency-Key; gateway failure (SPEC §3 Payments)."""

import re

import pytest

from persistence.models import IdempotencyKey, Payment
from tests.builders import make_cart, make_payment, register, send_webhook, start_payment
from tests.integration.support import (
    FailingGateway,
    assert_json_error,
    count,
    delete_cart_directly,
    history_rows,
    make_booking,
    payment_row,
    snapshot,
)

TXN = re.compile(r"^TXN[A-Z0-9]{12}$")


# --- starting a payment -----------------------------------------------------------------------------------


def test_starting_a_payment_returns_it_pending_with_its_order(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=2, quantity=2, price="1250.25")

    response = start_payment(client, user, cart["cart_id"])

    assert response.status_code == 201
    payment = response.json
    assert list(payment) == ["transaction_id", "cart_id", "status", "amount", "currency", "provider_order_id",
                             "created_at", "updated_at", "expires_at", "booking_id"]
    assert TXN.match(payment["transaction_id"])
    assert payment["cart_id"] == cart["cart_id"]
    assert payment["status"] == "PENDING"
    assert payment["amount"] == "5001.00"
    assert payment["currency"] == "INR"
    assert isinstance(payment["provider_order_id"], str) and payment["provider_order_id"]
    assert payment["created_at"] == payment["updated_at"] == "2030-01-15T12:00:00.000Z"
    assert payment["expires_at"] == "2030-01-15T12:30:00.000Z"
    assert payment["booking_id"] is None


def test_a_payment_goes_through_initiated_to_pending_in_its_history(app, client):
    user = register(client)
    payment = make_payment(app, client, user)

    response = client.get(f"/api/payments/{payment['transaction_id']}/history/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json == [{"from": "INITIATED", "to": "PENDING", "trigger": "submit",
                              "actor": f"user:{user['user_id']}", "at": "2030-01-15T12:00:00.000Z",
                              "accepted": True}]


def test_the_currency_and_timeout_come_from_configuration(app, make_app):
    configured = make_app(CURRENCY="USD", PAYMENT_TIMEOUT_MINUTES="0.5")
    client = configured.test_client()
    user = register(client)

    payment = make_payment(configured, client, user)

    assert payment["currency"] == "USD"
    assert payment["expires_at"] == "2030-01-15T12:00:30.000Z"


def test_the_amount_is_the_cart_total_when_the_payment_was_created(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=1, quantity=3, price="19.99")

    payment = start_payment(client, user, cart["cart_id"]).json

    assert payment["amount"] == "59.97"
    assert str(payment_row(app, payment["transaction_id"]).amount) == "59.97"


def test_a_cart_may_have_several_open_payments(app, client):
    user = register(client)
    cart = make_cart(app, client, user)

    first = start_payment(client, user, cart["cart_id"])
    second = start_payment(client, user, cart["cart_id"])

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json["transaction_id"] != second.json["transaction_id"]
    assert first.json["provider_order_id"] != second.json["provider_order_id"]


def test_paying_for_an_empty_cart_is_refused_and_creates_no_payment(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=0)
    before = snapshot(app)

    response = start_payment(client, user, cart["cart_id"])

    assert_json_error(response, 409, reason="cart_empty")
    assert snapshot(app) == before


@pytest.mark.parametrize("slot", [{}, {"selected_date": "2030-02-01"}, {"selected_time": "10:00"}])
def test_paying_for_a_cart_without_a_full_slot_is_refused(app, client, slot):
    user = register(client)
    cart = make_cart(app, client, user, slot=False)
    if slot:
        client.patch(f"/api/cart/carts/{cart['cart_id']}/", json=slot, headers=user["headers"])
    before = snapshot(app)

    response = start_payment(client, user, cart["cart_id"])

    assert_json_error(response, 409, reason="booking_slot_missing")
    assert snapshot(app) == before


def test_paying_for_a_converted_cart_is_refused(app, client):
    booked = make_booking(app, client)
    before = snapshot(app)

    response = start_payment(client, booked["user"], booked["cart"]["cart_id"])

    assert_json_error(response, 409, reason="cart_not_active")
    assert snapshot(app) == before


def test_paying_for_a_deleted_cart_is_refused(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    delete_cart_directly(app, cart["cart_id"])
    before = snapshot(app)

    response = start_payment(client, user, cart["cart_id"])

    assert_json_error(response, 409, reason="cart_not_active")
    assert snapshot(app) == before


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({}, {"cart_id"}),
    ({"cart_id": "not-a-uuid"}, {"cart_id"}),
    ({"cart_id": 12}, {"cart_id"}),
    ({"cart_id": None}, {"cart_id"}),
])
def test_a_payment_request_with_a_bad_cart_id_is_a_400(app, client, body, bad_fields):
    user = register(client)
    make_cart(app, client, user)
    before = snapshot(app)

    response = client.post("/api/payments/", json=body, headers=user["headers"])

    assert set(assert_json_error(response, 400)["fields"]) == bad_fields
    assert snapshot(app) == before


def test_a_payment_request_with_an_extra_field_is_a_400(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    before = snapshot(app)

    response = client.post("/api/payments/", json={"cart_id": cart["cart_id"], "amount": "1.00"},
                           headers=user["headers"])

    assert set(assert_json_error(response, 400)["fields"]) == {"amount"}
    assert snapshot(app) == before


def test_paying_for_an_unknown_cart_is_a_404(app, client):
    user = register(client)
    before = snapshot(app)

    response = start_payment(client, user, "00000000-0000-0000-0000-000000000000")

    assert_json_error(response, 404)
    assert snapshot(app) == before


# --- the gateway fails ------------------------------------------------------------------------------------


def _failing(make_app, app):
    gateway = FailingGateway()
    return gateway, make_app(GATEWAY=gateway).test_client()


def test_a_gateway_failure_is_a_502_and_the_payment_stays_initiated(app, client, make_app):
    user = register(client)
    cart = make_cart(app, client, user)
    gateway, failing_client = _failing(make_app, app)

    response = start_payment(failing_client, user, cart["cart_id"])

    body = assert_json_error(response, 502)
    assert gateway.attempts == 1
    row = payment_row(app, body["transaction_id"])
    assert (row.status, row.provider_order_id, row.cart_id) == ("INITIATED", None, cart["cart_id"])
    assert history_rows(app, "payment", body["transaction_id"]) == []
    shown = client.get(f"/api/payments/{body['transaction_id']}/", headers=user["headers"]).json
    assert (shown["status"], shown["provider_order_id"]) == ("INITIATED", None)


def test_a_payment_left_initiated_by_the_gateway_still_locks_the_cart_until_cancelled(app, client, make_app):
    user = register(client)
    cart = make_cart(app, client, user)
    _, failing_client = _failing(make_app, app)
    txn = start_payment(failing_client, user, cart["cart_id"]).json["transaction_id"]

    locked = client.patch(f"/api/cart/carts/{cart['cart_id']}/", json={"selected_time": "18:00"},
                          headers=user["headers"])
    cancelled = client.post(f"/api/payments/{txn}/cancel/", headers=user["headers"])

    assert_json_error(locked, 409, reason="cart_locked_by_payment")
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "CANCELLED"
    assert history_rows(app, "payment", txn) == [("INITIATED", "CANCELLED", "cancel", f"user:{user['user_id']}",
                                                  True)]


# --- Idempotency-Key --------------------------------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_answer_without_a_new_payment(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    first = start_payment(client, user, cart["cart_id"], key="checkout-1")
    clock.advance(minutes=2)

    again = start_payment(client, user, cart["cart_id"], key="checkout-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert again.get_data() == first.get_data()
    assert count(app, Payment) == 1
    assert count(app, IdempotencyKey) == 1


def test_the_same_key_with_another_body_is_refused(app, client):
    user = register(client)
    first_cart = make_cart(app, client, user)
    second_cart = make_cart(app, client, user)
    start_payment(client, user, first_cart["cart_id"], key="checkout-1")
    before = snapshot(app)

    response = start_payment(client, user, second_cart["cart_id"], key="checkout-1")

    assert_json_error(response, 409, reason="idempotency_key_reused")
    assert snapshot(app) == before


def test_keys_belong_to_one_user(app, client):
    alice = register(client)
    bob = register(client)
    alices = start_payment(client, alice, make_cart(app, client, alice)["cart_id"], key="shared-key")
    bobs_cart = make_cart(app, client, bob)

    bobs = start_payment(client, bob, bobs_cart["cart_id"], key="shared-key")

    assert bobs.status_code == 201
    assert bobs.json["cart_id"] == bobs_cart["cart_id"]
    assert bobs.json["transaction_id"] != alices.json["transaction_id"]
    assert count(app, Payment) == 2


def test_another_user_replaying_a_key_with_the_same_body_gets_no_access_to_the_payment(app, client):
    alice = register(client)
    bob = register(client)
    cart = make_cart(app, client, alice)
    start_payment(client, alice, cart["cart_id"], key="k-1")
    before = snapshot(app)

    response = start_payment(client, bob, cart["cart_id"], key="k-1")

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_a_key_whose_first_answer_was_a_gateway_failure_replays_the_502(app, client, make_app):
    user = register(client)
    cart = make_cart(app, client, user)
    _, failing_client = _failing(make_app, app)
    first = start_payment(failing_client, user, cart["cart_id"], key="gw-down")

    again = start_payment(client, user, cart["cart_id"], key="gw-down")

    assert (first.status_code, again.status_code) == (502, 502)
    assert again.json == first.json
    assert count(app, Payment) == 1


def test_a_refused_request_does_not_use_up_its_key(app, client):
    user = register(client)
    cart = make_cart(app, client, user, slot=False)
    refused = start_payment(client, user, cart["cart_id"], key="after-slot")
    client.patch(f"/api/cart/carts/{cart['cart_id']}/", json={"selected_date": "2030-02-01",
                                                             "selected_time": "10:00"}, headers=user["headers"])

    accepted = start_payment(client, user, cart["cart_id"], key="after-slot")

    assert_json_error(refused, 409, reason="booking_slot_missing")
    assert accepted.status_code == 201
    assert count(app, Payment) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey"])
def test_a_malformed_idempotency_key_is_a_400(app, client, key):
    user = register(client)
    cart = make_cart(app, client, user)
    before = snapshot(app)

    response = client.post("/api/payments/", json={"cart_id": cart["cart_id"]},
                           headers={**user["headers"], "Idempotency-Key": key})

    assert set(assert_json_error(response, 400)["fields"]) == {"Idempotency-Key"}
    assert snapshot(app) == before


# --- reading ----------------------------------------------------------------------------------------------


def test_a_payment_is_read_back_as_it_was_created(app, client):
    user = register(client)
    payment = make_payment(app, client, user)

    response = client.get(f"/api/payments/{payment['transaction_id']}/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json == payment


def test_a_paid_payment_shows_its_booking_id(app, client):
    booked = make_booking(app, client)

    response = client.get(f"/api/payments/{booked['payment']['transaction_id']}/",
                          headers=booked["user"]["headers"])

    assert response.json["status"] == "SUCCESS"
    assert response.json["booking_id"] == booked["booking"]["booking_id"]


@pytest.mark.parametrize("txn", ["TXN000000000000", "nope"])
def test_an_unknown_payment_is_a_404(app, client, txn):
    user = register(client)

    assert_json_error(client.get(f"/api/payments/{txn}/", headers=user["headers"]), 404)
    assert_json_error(client.get(f"/api/payments/{txn}/history/", headers=user["headers"]), 404)
    assert_json_error(client.post(f"/api/payments/{txn}/cancel/", headers=user["headers"]), 404)


# --- cancelling -------------------------------------------------------------------------------------------


def test_cancelling_an_open_payment_makes_it_cancelled(app, client, clock):
    user = register(client)
    payment = make_payment(app, client, user)
    clock.advance(minutes=4)

    response = client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json["status"] == "CANCELLED"
    assert response.json["updated_at"] == "2030-01-15T12:04:00.000Z"
    assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"


def test_payment_history_lists_transitions_oldest_first(app, client, clock):
    user = register(client)
    payment = make_payment(app, client, user)
    clock.advance(minutes=4)
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])

    response = client.get(f"/api/payments/{payment['transaction_id']}/history/", headers=user["headers"])

    actor = f"user:{user['user_id']}"
    assert response.json == [
        {"from": "INITIATED", "to": "PENDING", "trigger": "submit", "actor": actor,
         "at": "2030-01-15T12:00:00.000Z", "accepted": True},
        {"from": "PENDING", "to": "CANCELLED", "trigger": "cancel", "actor": actor,
         "at": "2030-01-15T12:04:00.000Z", "accepted": True},
    ]


def test_cancelling_a_cancelled_payment_is_a_409_and_records_nothing(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])
    before = snapshot(app)

    response = client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])

    assert_json_error(response, 409)
    assert snapshot(app) == before


def test_cancelling_a_successful_payment_is_a_409(app, client):
    booked = make_booking(app, client)
    before = snapshot(app)

    response = client.post(f"/api/payments/{booked['payment']['transaction_id']}/cancel/",
                           headers=booked["user"]["headers"])

    assert_json_error(response, 409)
    assert snapshot(app) == before


def test_cancelling_a_failed_payment_is_a_409(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    send_webhook(app, client, {"event_id": "evt-f", "event": "payment.failed",
                               "provider_order_id": payment["provider_order_id"], "provider_payment_id": "pay_1"})
    before = snapshot(app)

    response = client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])

    assert_json_error(response, 409)
    assert snapshot(app) == before
    assert payment_row(app, payment["transaction_id"]).status == "FAILED"


def test_cancel_takes_no_fields(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    before = snapshot(app)

    response = client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"],
                           json={"reason": "changed my mind"})

    assert set(assert_json_error(response, 400)["fields"]) == {"reason"}
    assert snapshot(app) == before


# --- isolation --------------------------------------------------------------------------------------------


def test_another_users_payment_is_not_found_and_nothing_changes(app, client):
    owner = register(client)
    intruder = register(client)
    cart = make_cart(app, client, owner)
    payment = make_payment(app, client, owner, cart["cart_id"])
    txn = payment["transaction_id"]
    before = snapshot(app)

    assert_json_error(start_payment(client, intruder, cart["cart_id"]), 404)
    assert_json_error(client.get(f"/api/payments/{txn}/", headers=intruder["headers"]), 404)
    assert_json_error(client.get(f"/api/payments/{txn}/history/", headers=intruder["headers"]), 404)
    assert_json_error(client.post(f"/api/payments/{txn}/cancel/", headers=intruder["headers"]), 404)
    assert snapshot(app) == before
