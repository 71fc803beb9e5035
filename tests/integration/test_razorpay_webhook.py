"""Razorpay's webhook (SPEC §3 webhook, §4 Gateways; issue 14), and the whole flow with GATEWAY=razorpay.

Bodies, signatures and event ids are those the sandbox makes as Razorpay
does (tests/razorpay_sandbox.py): payment.captured, payment.failed,
refund.processed, refund.failed; a tampered body, a wrong or missing
signature, a replayed or missing X-Razorpay-Event-Id, bodies that are not
Razorpay's events, and the events Razorpay sends that the service does not
act on. Then one day of payments, late captures and refunds, end to end.
"""

import json
import threading
import urllib.request
from collections import Counter

import jsonschema_rs
import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from persistence.db import db
from persistence.models import Refund, WebhookEvent
from tests.builders import confirm, make_cart, make_payment, register
from tests.conftest import RAZORPAY_KEYS
from tests.integration.support import assert_json_error, count, history_rows, payment_row, snapshot
from tests.razorpay_sandbox import ApiError, event_body, webhook_signature
from web.config import DEV_WEBHOOK_SECRET

WEBHOOK_SECRET = RAZORPAY_KEYS["RAZORPAY_WEBHOOK_SECRET"]


@pytest.fixture
def gateway_name() -> str:
    return "razorpay"


@pytest.fixture
def sandbox(app, razorpay_server):
    return razorpay_server.sandbox  # emptied when `app` was made


def deliver(client, made: dict, **headers):
    """POST a webhook as the sandbox made it; `headers` replace its own (None leaves one out)."""
    sent = {name: value for name, value in {**made["headers"], **headers}.items() if value is not None}
    return client.post("/api/payments/webhook/", data=made["body"], headers=sent)


def signed(body, event_id: str | None = "evt_test_1") -> dict:
    """Any body (as JSON, or raw bytes), signed with the webhook secret as Razorpay signs, with this event id."""
    raw = body.decode() if isinstance(body, bytes) else json.dumps(body)
    headers = {"Content-Type": "application/json", "X-Razorpay-Event-Id": event_id,
               "X-Razorpay-Signature": webhook_signature(raw.encode(), WEBHOOK_SECRET)}
    return {"event_id": event_id, "body": raw, "headers": headers}


def paid(app, client, sandbox, status: str = "captured") -> tuple[dict, dict, str]:
    """A customer's PENDING payment whose Razorpay order the customer then paid: (user, payment, payment id)."""
    user = register(client)
    payment = make_payment(app, client, user)
    return user, payment, sandbox.pay(payment["provider_order_id"], status=status)["razorpay_payment_id"]


def cancelled(app, client) -> tuple[dict, dict]:
    user = register(client)
    payment = make_payment(app, client, user)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"]).status_code == 200
    return user, payment


def late_capture(app, client, sandbox) -> tuple[dict, dict, str]:
    """A payment cancelled, then captured by Razorpay and confirmed: refused, its refund REQUESTED."""
    user, payment = cancelled(app, client)
    checkout = sandbox.pay(payment["provider_order_id"])
    assert confirm(app, client, user, payment, provider_payment_id=checkout["razorpay_payment_id"],
                   sig=checkout["razorpay_signature"]).status_code == 409
    return user, payment, checkout["razorpay_payment_id"]


def send_refunds(app) -> str:
    result = app.test_cli_runner().invoke(args=["send-refunds"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def refund_of(app, provider_payment_id: str) -> Refund:
    with app.app_context():
        refund = db.session.scalar(select(Refund).where(Refund.provider_payment_id == provider_payment_id))
        db.session.expunge(refund)
        return refund


def recorded_events(app) -> list[tuple]:
    with app.app_context():
        return [(e.event_id, e.event, e.provider_order_id, e.provider_payment_id, e.outcome)
                for e in db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.received_at))]


# --- The four events ------------------------------------------------------------------------------------------------

def test_payment_captured_books_the_cart_as_a_confirm_would(app, client, sandbox):
    user, payment, pay_id = paid(app, client, sandbox)
    made = sandbox.webhook("payment.captured", pay_id)

    response = deliver(client, made)

    assert response.status_code == 200
    assert response.json == {"event_id": made["event_id"], "outcome": "captured"}
    row = payment_row(app, payment["transaction_id"])
    assert (row.status, row.provider_payment_id) == ("SUCCESS", pay_id)
    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "PENDING", "SUCCESS", "succeed", f"webhook:{made['event_id']}", True)
    assert [b["transaction_id"] for b in client.get("/api/bookings/", headers=user["headers"]).json] == [
        payment["transaction_id"]]
    assert recorded_events(app) == [(made["event_id"], "payment.captured", payment["provider_order_id"], pay_id,
                                     "captured")]


def test_payment_failed_fails_the_payment(app, client, sandbox):
    _, payment, pay_id = paid(app, client, sandbox, status="failed")
    made = sandbox.webhook("payment.failed", pay_id)

    response = deliver(client, made)

    assert response.json == {"event_id": made["event_id"], "outcome": "failed"}
    assert payment_row(app, payment["transaction_id"]).status == "FAILED"
    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "PENDING", "FAILED", "fail", f"webhook:{made['event_id']}", True)


def test_payment_captured_for_a_cancelled_payment_is_refused_and_its_refund_requested(app, client, sandbox):
    _, payment = cancelled(app, client)
    pay_id = sandbox.pay(payment["provider_order_id"])["razorpay_payment_id"]

    response = deliver(client, sandbox.webhook("payment.captured", pay_id))

    assert response.json["outcome"] == "refused"
    refund = refund_of(app, pay_id)
    assert (refund.transaction_id, refund.status, str(refund.amount)) == (payment["transaction_id"], "REQUESTED",
                                                                          payment["amount"])


def test_refund_processed_settles_the_refund_razorpay_held_as_pending(app, client, sandbox):
    _, payment, pay_id = late_capture(app, client, sandbox)
    sandbox.configure("pending")
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    [held] = sandbox.refunds.values()
    assert refund_of(app, pay_id).provider_refund_id == held["id"]
    sandbox.settle(held["id"], "processed")
    made = sandbox.webhook("refund.processed", held["id"])

    response = deliver(client, made)

    assert response.json == {"event_id": made["event_id"], "outcome": "succeeded"}
    refund = refund_of(app, pay_id)
    assert (refund.status, refund.provider_refund_id, refund.last_error) == ("SUCCEEDED", held["id"], None)
    assert history_rows(app, "refund", refund.id)[-1] == (
        "REQUESTED", "SUCCEEDED", "succeed", f"webhook:{made['event_id']}", True)
    # A refund names its payment only; the record names the order from the payment Razorpay sends along.
    assert recorded_events(app) == [(made["event_id"], "refund.processed", payment["provider_order_id"], pay_id,
                                     "succeeded")]
    assert send_refunds(app).startswith("Sent 0 refunds")


def test_refund_failed_fails_the_refund_for_an_admin_to_retry(app, client, sandbox):
    _, _, pay_id = late_capture(app, client, sandbox)
    sandbox.configure("pending")
    send_refunds(app)
    [held] = sandbox.refunds.values()
    sandbox.settle(held["id"], "failed")

    response = deliver(client, sandbox.webhook("refund.failed", held["id"]))

    assert response.json["outcome"] == "failed"
    refund = refund_of(app, pay_id)
    assert (refund.status, refund.last_error) == ("FAILED", "The gateway reported that the refund failed.")


def test_a_refund_event_that_comes_before_the_job_heard_razorpays_answer_settles_the_refund(app, client, sandbox):
    _, _, pay_id = late_capture(app, client, sandbox)
    sandbox.fail_next("lost_answer", operation="refund")
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    assert refund_of(app, pay_id).provider_refund_id is None
    [held] = sandbox.refunds.values()  # made, carrying our refund_id; the answer never came back

    response = deliver(client, sandbox.webhook("refund.processed", held["id"]))

    assert response.json["outcome"] == "succeeded"
    refund = refund_of(app, pay_id)
    assert (refund.status, refund.provider_refund_id) == ("SUCCEEDED", held["id"])
    assert held["notes"] == {"refund_id": refund.id}


def test_a_refund_made_at_razorpay_by_someone_else_does_not_settle_ours(app, client, sandbox):
    _, _, pay_id = late_capture(app, client, sandbox)
    elsewhere = sandbox.refund(pay_id, {"amount": 100})  # from the dashboard: no refund_id of ours

    response = deliver(client, sandbox.webhook("refund.processed", elsewhere["id"]))

    assert response.json["outcome"] == "unknown_refund"
    refund = refund_of(app, pay_id)
    assert (refund.status, refund.provider_refund_id) == ("REQUESTED", None)


# --- Signatures and event ids ---------------------------------------------------------------------------------------

def test_a_body_changed_after_razorpay_signed_it_is_a_401_and_changes_nothing(app, client, sandbox):
    _, payment, pay_id = paid(app, client, sandbox, status="failed")
    made = sandbox.webhook("payment.failed", pay_id)
    tampered = {**made, "body": made["body"].replace('"payment.failed"', '"payment.captured"')}
    assert tampered["body"] != made["body"]
    before = snapshot(app)

    response = deliver(client, tampered)

    assert_json_error(response, 401)
    assert snapshot(app) == before


@pytest.mark.parametrize("signature", [None, "", "bad", "0" * 64, "key secret", "offline webhook secret"])
def test_a_missing_or_wrong_signature_is_a_401_and_changes_nothing(app, client, sandbox, signature):
    _, _, pay_id = paid(app, client, sandbox)
    made = sandbox.webhook("payment.captured", pay_id)
    other_secret = {"key secret": RAZORPAY_KEYS["RAZORPAY_KEY_SECRET"], "offline webhook secret": DEV_WEBHOOK_SECRET}
    if signature in other_secret:
        signature = webhook_signature(made["body"].encode(), other_secret[signature])
    before = snapshot(app)

    response = deliver(client, made, **{"X-Razorpay-Signature": signature})

    assert_json_error(response, 401)
    assert "X-Razorpay-Signature" in response.json["detail"]
    assert snapshot(app) == before


def test_razorpays_signature_under_the_offline_gateways_header_is_a_401(app, client, sandbox):
    _, _, pay_id = paid(app, client, sandbox)
    made = sandbox.webhook("payment.captured", pay_id)

    response = deliver(client, made, **{"X-Razorpay-Signature": None,
                                        "X-Gateway-Signature": made["headers"]["X-Razorpay-Signature"]})

    assert_json_error(response, 401)


def test_a_replayed_event_id_is_a_duplicate_and_nothing_happens_again(app, client, sandbox):
    _, payment, pay_id = paid(app, client, sandbox)
    _, other, other_pay_id = paid(app, client, sandbox, status="failed")
    made = sandbox.webhook("payment.captured", pay_id)
    assert deliver(client, made).json["outcome"] == "captured"
    before = snapshot(app)

    replays = [deliver(client, made) for _ in range(2)]
    same_id_other_event = deliver(client, sandbox.webhook("payment.failed", other_pay_id, event_id=made["event_id"]))

    assert [(r.status_code, r.json) for r in (*replays, same_id_other_event)] == [
        (200, {"event_id": made["event_id"], "outcome": "duplicate"})] * 3
    assert snapshot(app) == before
    assert payment_row(app, other["transaction_id"]).status == "PENDING"


@pytest.mark.parametrize("event_id", [None, "", "x" * 129, "evt with space", "évènement"])
def test_a_signed_event_without_a_usable_event_id_is_a_400_and_changes_nothing(app, client, sandbox, event_id):
    _, _, pay_id = paid(app, client, sandbox)
    made = sandbox.webhook("payment.captured", pay_id)
    before = snapshot(app)

    response = deliver(client, made, **{"X-Razorpay-Event-Id": event_id})

    assert set(assert_json_error(response, 400)["fields"]) == {"X-Razorpay-Event-Id"}
    assert snapshot(app) == before


def test_an_event_id_of_128_characters_is_taken(app, client, sandbox):
    _, _, pay_id = paid(app, client, sandbox)

    response = deliver(client, sandbox.webhook("payment.captured", pay_id, event_id="E" * 128))

    assert response.json == {"event_id": "E" * 128, "outcome": "captured"}


# --- Bodies ---------------------------------------------------------------------------------------------------------

PAYMENT = {"id": "pay_Body0000000001", "entity": "payment", "order_id": "order_Body000000001", "status": "captured"}
REFUND = {"id": "rfnd_Body000000001", "entity": "refund", "payment_id": PAYMENT["id"], "notes": [],
          "status": "processed"}


@pytest.mark.parametrize("body", [
    {"event_id": "e", "event": "payment.captured", "provider_order_id": "o", "provider_payment_id": "p"},
    {"entity": "event", "event": "payment.captured", "payload": {}},
    {"entity": "event", "event": "payment.captured", "payload": {"payment": PAYMENT}},  # not under "entity"
    {"entity": "event", "event": "payment.captured", "payload": {"payment": {"entity": {**PAYMENT, "id": 5}}}},
    {"entity": "event", "event": "payment.failed", "payload": {"payment": {"entity": {"order_id": "order_1"}}}},
    {"entity": "event", "event": "refund.processed", "payload": {"payment": {"entity": PAYMENT}}},
    {"entity": "event", "event": "refund.failed", "payload": {"refund": {"entity": {**REFUND, "payment_id": None}}}},
    {"entity": "collection", "event": "payment.captured", "payload": {"payment": {"entity": PAYMENT}}},
    {"entity": "event", "event": 7, "payload": {}},
    {"entity": "event", "event": "payment.captured"},
    [], "payment.captured", b"{not json",
])
def test_a_signed_body_that_is_not_razorpays_event_is_a_400_and_changes_nothing(app, client, sandbox, body):
    paid(app, client, sandbox)
    before = snapshot(app)

    response = deliver(client, signed(body))

    assert_json_error(response, 400)
    assert snapshot(app) == before


def refund_created(sandbox, pay_id: str) -> dict:
    return sandbox.webhook("refund.created", sandbox.refund(pay_id, {"amount": 100})["id"])


@pytest.mark.parametrize("make", [
    lambda sandbox, pay_id: sandbox.webhook("payment.authorized", pay_id),
    lambda sandbox, pay_id: sandbox.webhook("order.paid", pay_id),
    refund_created,
    lambda sandbox, pay_id: signed(event_body("settlement.processed") | {
        "contains": ["settlement"], "payload": {"settlement": {"entity": {"id": "setl_1", "amount": 9}}}}),
], ids=["payment.authorized", "order.paid", "refund.created", "settlement.processed"])
def test_events_razorpay_sends_that_the_service_does_not_act_on_are_acknowledged_and_change_nothing(
        app, client, sandbox, make):
    _, payment, pay_id = paid(app, client, sandbox)
    made = make(sandbox, pay_id)
    before = snapshot(app)

    answers = [deliver(client, made) for _ in range(2)]

    assert [(a.status_code, a.json) for a in answers] == [(200, {"event_id": made["event_id"],
                                                                 "outcome": "ignored"})] * 2
    assert snapshot(app) == before  # not even recorded: it changes nothing, so its retries change nothing either
    assert payment_row(app, payment["transaction_id"]).status == "PENDING"


def test_a_capture_of_a_payment_made_without_an_order_is_recorded_as_of_an_unknown_order(app, client):
    body = event_body("payment.captured", payment={**PAYMENT, "order_id": None})

    response = deliver(client, signed(body, "evt_no_order"))

    assert response.json == {"event_id": "evt_no_order", "outcome": "unknown_order"}
    assert recorded_events(app) == [("evt_no_order", "payment.captured", "", PAYMENT["id"], "unknown_order")]


def test_a_refund_event_without_its_payment_is_recorded_without_an_order(app, client):
    response = deliver(client, signed(event_body("refund.processed", refund=REFUND), "evt_no_payment"))

    assert response.json["outcome"] == "unknown_refund"
    assert recorded_events(app) == [("evt_no_payment", "refund.processed", "", PAYMENT["id"], "unknown_refund")]


def test_fields_razorpay_adds_are_ignored(app, client, sandbox):
    _, _, pay_id = paid(app, client, sandbox)
    body = json.loads(sandbox.webhook("payment.captured", pay_id)["body"])
    body["payload"]["payment"]["entity"]["a_field_razorpay_adds_later"] = {"nested": [1, 2]}
    body["new_top_level_field"] = True

    assert deliver(client, signed(body)).json["outcome"] == "captured"


# --- The document ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("event", ["payment.captured", "payment.failed", "refund.processed", "refund.failed",
                                   "order.paid"])
def test_the_documented_body_takes_the_bodies_razorpay_sends(app, client, sandbox, event):
    document = client.get("/openapi.json").json
    validator = jsonschema_rs.validator_for({"$ref": "#/components/schemas/RazorpayEvent",
                                             "components": document["components"]})
    _, _, pay_id = paid(app, client, sandbox, status="failed" if event == "payment.failed" else "captured")
    entity_id = pay_id
    if event.startswith("refund."):
        sandbox.configure("pending")
        entity_id = sandbox.refund(pay_id, {"amount": 100})["id"]
        sandbox.settle(entity_id, event.removeprefix("refund."))

    assert validator.is_valid(json.loads(sandbox.webhook(event, entity_id)["body"]))


# --- Over HTTP, as in the README's walk-through ---------------------------------------------------------------------

@pytest.fixture
def served(app):
    """The app on a real HTTP server in a thread; its webhook URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/payments/webhook/"
    server.shutdown()
    thread.join(timeout=5)


def sandbox_control(razorpay_server, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{razorpay_server.url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_the_sandbox_delivers_razorpays_webhook_to_the_service_and_again_as_a_retry(app, client, sandbox,
                                                                                   razorpay_server, served):
    _, payment, pay_id = paid(app, client, sandbox)

    first = sandbox_control(razorpay_server, "/_sandbox/webhooks",
                            {"event": "payment.captured", "id": pay_id, "deliver_to": served})
    retry = sandbox_control(razorpay_server, "/_sandbox/webhooks", {
        "event": "payment.captured", "id": pay_id, "event_id": first["event_id"], "deliver_to": served})

    assert first["delivered"] == {"status": 200, "body": {"event_id": first["event_id"], "outcome": "captured"}}
    assert retry["delivered"] == {"status": 200, "body": {"event_id": first["event_id"], "outcome": "duplicate"}}
    assert payment_row(app, payment["transaction_id"]).status == "SUCCESS"


def test_the_sandbox_sends_an_event_only_for_an_entity_in_its_state(sandbox, app, client):
    _, _, pay_id = paid(app, client, sandbox, status="authorized")

    with pytest.raises(ApiError, match="payment.captured only when the payment's captured is True"):
        sandbox.webhook("payment.captured", pay_id)


# --- The whole flow -------------------------------------------------------------------------------------------------

def test_a_day_with_razorpay_every_capture_ends_in_its_booking_or_one_refund(app, client, sandbox):
    # A customer pays: the order is made at Razorpay in paise, the confirm carries Razorpay's signature.
    user = register(client)
    cart = make_cart(app, client, user, items=2, quantity=3, price="1234.56")
    payment = make_payment(app, client, user, cart["cart_id"])
    order = sandbox.orders[payment["provider_order_id"]]
    assert (order["amount"], order["currency"], order["receipt"]) == (740736, "INR", payment["transaction_id"])
    checkout = sandbox.pay(payment["provider_order_id"])
    booked = confirm(app, client, user, payment, provider_payment_id=checkout["razorpay_payment_id"],
                     sig=checkout["razorpay_signature"])
    assert (booked.status_code, booked.json["booking"]["total"]) == (200, "7407.36")
    # Razorpay's payment.captured for it comes too, and changes nothing.
    assert deliver(client, sandbox.webhook("payment.captured", checkout["razorpay_payment_id"])).json[
        "outcome"] == "already_captured"

    # A payment cancelled, then captured: refused; Razorpay holds its refund pending; refund.processed settles it.
    late_user, late, late_pay = late_capture(app, client, sandbox)
    sandbox.configure("pending")
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    [pending] = sandbox.refunds.values()
    sandbox.settle(pending["id"], "processed")
    assert deliver(client, sandbox.webhook("refund.processed", pending["id"])).json["outcome"] == "succeeded"
    refunds = client.get(f"/api/payments/{late['transaction_id']}/refunds/", headers=late_user["headers"]).json
    assert [(r["status"], r["provider_refund_id"], r["amount"]) for r in refunds] == [
        ("SUCCEEDED", pending["id"], "2500.00")]

    # A payment cancelled and captured without a word to us: reconciliation finds the capture at Razorpay.
    sandbox.configure("processed")
    _, silent = cancelled(app, client)
    silent_pay = sandbox.pay(silent["provider_order_id"])["razorpay_payment_id"]
    result = app.test_cli_runner().invoke(args=["reconcile-payments"])
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == sorted([
        f"Order {late['provider_order_id']} (payment {late['transaction_id']}, CANCELLED): {late_pay} already "
        "refunded",
        f"Order {silent['provider_order_id']} (payment {silent['transaction_id']}, CANCELLED): {silent_pay} refund "
        "requested",
        "Checked 3 orders, found 2 captures, requested 1 refunds"])
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    [processed] = [r for r in sandbox.refunds.values() if r["payment_id"] == silent_pay]
    # Razorpay's refund.processed for a refund the job already settled: nothing more.
    assert deliver(client, sandbox.webhook("refund.processed", processed["id"])).json["outcome"] == "ignored"

    # Every capture Razorpay holds bought its booking or was refunded exactly once.
    captured = [p["id"] for p in sandbox.payments.values() if p["captured"]]
    refunded = Counter(r["payment_id"] for r in sandbox.refunds.values() if r["status"] != "failed")
    assert {pay_id: refunded[pay_id] for pay_id in captured} == {
        checkout["razorpay_payment_id"]: 0, late_pay: 1, silent_pay: 1}
    assert count(app, Refund, Refund.status == "SUCCEEDED") == 2
    assert payment_row(app, payment["transaction_id"]).provider_payment_id == checkout["razorpay_payment_id"]
