"""The gateway webhook: signature, events, dedupe, late captures (SPEC §3 webhook)."""

import json

import pytest

from persistence.models import Booking, WebhookEvent
from tests.builders import confirm, make_cart, make_payment, register, send_webhook
from tests.conftest import both_gateways
from tests.integration.support import assert_json_error, cart_row, count, history_rows, payment_row, snapshot


def _event(payment, event="payment.captured", event_id="evt_1", provider_payment_id="pay_1", **extra):
    return {"event_id": event_id, "event": event, "provider_order_id": payment["provider_order_id"],
            "provider_payment_id": provider_payment_id, **extra}


@both_gateways
def test_a_signed_capture_books_the_cart_like_a_confirmation(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    sibling = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=1)

    response = send_webhook(app, client, _event(payment, event_id="evt_cap"))

    assert response.status_code == 200
    assert response.json == {"event_id": "evt_cap", "outcome": "captured"}
    row = payment_row(app, payment["transaction_id"])
    assert (row.status, row.provider_payment_id) == ("SUCCESS", "pay_1")
    assert cart_row(app, cart["cart_id"]).status == "CONVERTED"
    assert payment_row(app, sibling["transaction_id"]).status == "CANCELLED"
    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "PENDING", "SUCCESS", "succeed", "webhook:evt_cap", True)
    assert history_rows(app, "payment", sibling["transaction_id"])[-1] == (
        "PENDING", "CANCELLED", "supersede", "webhook:evt_cap", True)
    bookings = client.get("/api/bookings/", headers=user["headers"]).json
    assert [(b["transaction_id"], b["status"]) for b in bookings] == [(payment["transaction_id"], "CONFIRMED")]


@both_gateways
def test_a_signed_failure_fails_the_payment(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])

    response = send_webhook(app, client, _event(payment, event="payment.failed", event_id="evt_f"))

    assert response.status_code == 200
    assert response.json == {"event_id": "evt_f", "outcome": "failed"}
    assert payment_row(app, payment["transaction_id"]).status == "FAILED"
    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "PENDING", "FAILED", "fail", "webhook:evt_f", True)
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"


@both_gateways
def test_the_customer_confirming_after_the_webhook_captured_gets_the_same_booking(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    send_webhook(app, client, _event(payment, provider_payment_id="pay_same"))
    before = snapshot(app)

    response = confirm(app, client, user, payment, provider_payment_id="pay_same")

    assert response.status_code == 200
    assert response.json["payment"]["status"] == "SUCCESS"
    assert snapshot(app) == before


@both_gateways
def test_a_capture_after_the_customer_confirmed_is_answered_and_changes_nothing_else(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    confirm(app, client, user, payment, provider_payment_id="pay_same")
    payment_history = history_rows(app, "payment", payment["transaction_id"])

    response = send_webhook(app, client, _event(payment, provider_payment_id="pay_same", event_id="evt_late"))

    assert response.status_code == 200
    assert response.json["outcome"] == "already_captured"
    assert history_rows(app, "payment", payment["transaction_id"]) == payment_history
    assert count(app, Booking) == 1


@pytest.mark.parametrize("sig", [None, "", "bad", "0" * 64])
def test_a_missing_or_bad_signature_is_a_401_and_records_nothing(app, client, sig):
    user = register(client)
    payment = make_payment(app, client, user)
    raw = json.dumps(_event(payment)).encode()
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Gateway-Signature"] = sig
    before = snapshot(app)

    response = client.post("/api/payments/webhook/", data=raw, headers=headers)

    assert_json_error(response, 401)
    assert snapshot(app) == before


def test_a_body_changed_after_signing_is_a_401(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    signed = json.dumps(_event(payment, event="payment.failed")).encode()
    sig = app.extensions["gateway"].sign_webhook(signed)
    tampered = json.dumps(_event(payment, event="payment.captured")).encode()
    before = snapshot(app)

    response = client.post("/api/payments/webhook/", data=tampered,
                           headers={"Content-Type": "application/json", "X-Gateway-Signature": sig})

    assert_json_error(response, 401)
    assert snapshot(app) == before


def test_a_body_signed_with_the_payment_secret_instead_of_the_webhook_secret_is_a_401(app, client):
    from tests.integration.support import DEV_GATEWAY_SECRET
    from web.gateway import OfflineGateway

    user = register(client)
    payment = make_payment(app, client, user)
    raw = json.dumps(_event(payment)).encode()
    wrong = OfflineGateway(DEV_GATEWAY_SECRET, DEV_GATEWAY_SECRET).sign_webhook(raw)
    before = snapshot(app)

    response = client.post("/api/payments/webhook/", data=raw,
                           headers={"Content-Type": "application/json", "X-Gateway-Signature": wrong})

    assert_json_error(response, 401)
    assert snapshot(app) == before


@pytest.mark.parametrize("body", [
    {"event_id": "e", "event": "payment.refunded", "provider_order_id": "o", "provider_payment_id": "p"},
    {"event": "payment.captured", "provider_order_id": "o", "provider_payment_id": "p"},
    {"event_id": "e", "event": "payment.captured", "provider_payment_id": "p"},
    {"event_id": "e", "event": "payment.captured", "provider_order_id": "o"},
    {"event_id": 5, "event": "payment.captured", "provider_order_id": "o", "provider_payment_id": "p"},
    {"event_id": "", "event": "payment.captured", "provider_order_id": "o", "provider_payment_id": "p"},
    {},
    [],
    "payment.captured",
])
def test_a_signed_body_that_is_not_an_event_is_a_400_and_records_nothing(app, client, body):
    user = register(client)
    make_payment(app, client, user)
    before = snapshot(app)

    response = send_webhook(app, client, body)

    assert_json_error(response, 400)
    assert snapshot(app) == before


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""])
def test_a_signed_body_that_is_not_json_is_a_400(app, client, raw):
    sig = app.extensions["gateway"].sign_webhook(raw)
    before = snapshot(app)

    response = client.post("/api/payments/webhook/", data=raw,
                           headers={"Content-Type": "application/json", "X-Gateway-Signature": sig})

    assert_json_error(response, 400)
    assert snapshot(app) == before


@both_gateways
def test_an_event_seen_before_does_nothing_again_even_with_another_body(app, client):
    user = register(client)
    failing = make_payment(app, client, user)
    other = make_payment(app, client, user)
    first = send_webhook(app, client, _event(failing, event="payment.failed", event_id="evt_dup"))
    before = snapshot(app)

    exact_again = send_webhook(app, client, _event(failing, event="payment.failed", event_id="evt_dup"))
    reused_id = send_webhook(app, client, _event(other, event="payment.captured", event_id="evt_dup"))

    assert first.json["outcome"] == "failed"
    assert (exact_again.status_code, exact_again.json) == (200, {"event_id": "evt_dup", "outcome": "duplicate"})
    assert (reused_id.status_code, reused_id.json["outcome"]) == (200, "duplicate")
    assert snapshot(app) == before
    assert payment_row(app, other["transaction_id"]).status == "PENDING"


@both_gateways
def test_a_duplicate_capture_event_does_nothing_again(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    send_webhook(app, client, _event(payment, event_id="evt_c"))
    before = snapshot(app)

    again = send_webhook(app, client, _event(payment, event_id="evt_c"))

    assert (again.status_code, again.json["outcome"]) == (200, "duplicate")
    assert snapshot(app) == before


@both_gateways
def test_a_failure_after_capture_changes_nothing(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    send_webhook(app, client, _event(payment, event_id="evt_cap"))
    payment_history = history_rows(app, "payment", payment["transaction_id"])

    response = send_webhook(app, client, _event(payment, event="payment.failed", event_id="evt_fail"))

    assert response.status_code == 200
    assert response.json["outcome"] == "ignored"
    assert payment_row(app, payment["transaction_id"]).status == "SUCCESS"
    assert history_rows(app, "payment", payment["transaction_id"]) == payment_history
    assert count(app, Booking) == 1
    assert count(app, WebhookEvent) == 2


@both_gateways
def test_a_capture_for_a_cancelled_payment_is_answered_200_and_recorded_as_refused(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])
    clock.advance(minutes=5)

    response = send_webhook(app, client, _event(payment, event_id="evt_late", provider_payment_id="pay_late"))

    assert response.status_code == 200
    assert response.json == {"event_id": "evt_late", "outcome": "refused"}
    history = client.get(f"/api/payments/{payment['transaction_id']}/history/", headers=user["headers"]).json
    assert history[-1] == {"from": "CANCELLED", "to": "SUCCESS", "trigger": "succeed", "actor": "webhook:evt_late",
                           "at": "2030-01-15T12:05:00.000Z", "accepted": False}
    assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"
    assert count(app, Booking) == 0


@both_gateways
def test_a_refused_capture_event_is_not_recorded_twice_when_the_gateway_retries(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])
    send_webhook(app, client, _event(payment, event_id="evt_late"))
    before = snapshot(app)

    again = send_webhook(app, client, _event(payment, event_id="evt_late"))

    assert again.json["outcome"] == "duplicate"
    assert snapshot(app) == before
    assert [h[4] for h in history_rows(app, "payment", payment["transaction_id"])] == [True, True, False]


@both_gateways
def test_an_event_for_an_unknown_order_is_recorded_and_answered_200(app, client):
    before_payments = snapshot(app)["payments"]

    response = send_webhook(app, client, {"event_id": "evt_x", "event": "payment.captured",
                                          "provider_order_id": "order_unknown", "provider_payment_id": "pay_x"})

    assert response.status_code == 200
    assert response.json == {"event_id": "evt_x", "outcome": "unknown_order"}
    assert count(app, WebhookEvent) == 1
    assert snapshot(app)["payments"] == before_payments


def test_the_webhook_ignores_fields_it_does_not_know(app, client):
    user = register(client)
    payment = make_payment(app, client, user)

    response = send_webhook(app, client, _event(payment, event_id="evt_extra", created_at=1700000000))

    assert response.status_code == 200
    assert response.json["outcome"] == "captured"


def test_the_webhook_needs_no_bearer_token_and_ignores_one(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    raw = json.dumps(_event(payment, event="payment.failed", event_id="evt_tok")).encode()

    response = client.post("/api/payments/webhook/", data=raw, headers={
        "Content-Type": "application/json", "Authorization": "Bearer garbage",
        "X-Gateway-Signature": app.extensions["gateway"].sign_webhook(raw)})

    assert response.status_code == 200
    assert response.json["outcome"] == "failed"
