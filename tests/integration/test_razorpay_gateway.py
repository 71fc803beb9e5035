"""GATEWAY=razorpay (SPEC §4, issue 14): the adapter through the official SDK, over HTTP, against the local sandbox.

Every operation, amounts in paise, every error class (timeout, no connection,
5xx and 429 transient; other 4xx permanent), a refund found after its answer
was lost, both signatures; then the refund job and reconciliation with the
Razorpay gateway, from a late capture to Razorpay's refund.
"""

import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from persistence.db import db
from persistence.models import Refund
from tests.builders import confirm, make_cart, make_payment, register, start_payment
from tests.integration.support import payment_row
from tests.razorpay_sandbox import running
from web.gateway import PermanentGatewayError, TransientGatewayError
from web.razorpay_gateway import RazorpayGateway, to_paise

KEY_ID, KEY_SECRET, WEBHOOK_SECRET = "rzp_test_key", "rzp-test-key-secret", "rzp-test-webhook-secret"
TIMEOUT = 0.5  # the client's; a timeout fault makes the sandbox sleep past it


@pytest.fixture(scope="module")
def server():
    with running(KEY_ID, KEY_SECRET) as server:
        yield server


@pytest.fixture
def sandbox(server):
    server.sandbox.reset()
    return server.sandbox


@pytest.fixture
def app(make_app, server, sandbox):
    from tests.conftest import empty_all_tables

    app = make_app(GATEWAY="razorpay", RAZORPAY_BASE_URL=server.url, RAZORPAY_KEY_ID=KEY_ID,
                   RAZORPAY_KEY_SECRET=KEY_SECRET, RAZORPAY_WEBHOOK_SECRET=WEBHOOK_SECRET,
                   RAZORPAY_TIMEOUT_SECONDS=TIMEOUT, REFUND_MAX_ATTEMPTS=4)
    with app.app_context():
        empty_all_tables()
    return app


@pytest.fixture
def gateway(app) -> RazorpayGateway:
    return app.extensions["gateway"]


def razorpay_signature(order_id: str, payment_id: str, secret: str = KEY_SECRET) -> str:
    return hmac.new(secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()


def webhook_signature(raw: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def captured_payment(gateway, sandbox, amount: str = "2500.00") -> str:
    order_id = gateway.create_order(amount=Decimal(amount), currency="INR", receipt="TXNTEST00000001")
    return sandbox.pay(order_id)["razorpay_payment_id"]


# --- Orders and amounts ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rupees", "paise"), [("2500.00", 250000), ("12345.67", 1234567), ("1.01", 101),
                                               ("9999999999.99", 999999999999)])
def test_an_order_is_created_at_razorpay_in_paise_with_our_receipt(gateway, sandbox, rupees, paise):
    order_id = gateway.create_order(amount=Decimal(rupees), currency="INR", receipt="TXNABCDEF123456")

    order = sandbox.orders[order_id]
    assert (order["amount"], order["currency"], order["receipt"]) == (paise, "INR", "TXNABCDEF123456")
    assert sandbox.calls[-1]["body"] == {"amount": paise, "currency": "INR", "receipt": "TXNABCDEF123456"}


@pytest.mark.parametrize(("rupees", "paise"), [("0.01", 1), ("0.10", 10), ("2500", 250000), ("12345.67", 1234567)])
def test_rupees_become_whole_paise_exactly(rupees, paise):
    assert to_paise(Decimal(rupees)) == paise
    assert isinstance(to_paise(Decimal(rupees)), int)


def test_a_fraction_of_a_paisa_is_never_rounded_away():
    with pytest.raises(ValueError, match="fraction of a paisa"):
        to_paise(Decimal("0.005"))


def test_starting_a_payment_creates_its_razorpay_order_for_the_cart_total(app, client, sandbox):
    user = register(client)
    cart = make_cart(app, client, user, items=2, quantity=3, price="1234.56")

    payment = start_payment(client, user, cart["cart_id"]).json

    order = sandbox.orders[payment["provider_order_id"]]
    assert payment["amount"] == "7407.36"
    assert (order["amount"], order["receipt"], payment["status"]) == (740736, payment["transaction_id"], "PENDING")


def test_an_order_razorpay_refuses_is_a_502_and_the_payment_stays_initiated(app, client, sandbox):
    # Razorpay's least order is INR 1.00.
    user = register(client)
    cart = make_cart(app, client, user, price="0.50")

    answer = start_payment(client, user, cart["cart_id"])

    assert answer.status_code == 502
    assert payment_row(app, answer.json["transaction_id"]).status == "INITIATED"
    assert sandbox.orders == {}


# --- Payments of an order -------------------------------------------------------------------------------------------

def test_the_captured_payments_of_an_order_are_those_razorpay_captured_refunded_or_not(gateway, sandbox):
    order_id = gateway.create_order(amount=Decimal("2500.00"), currency="INR", receipt="TXNTEST00000001")
    sandbox.pay(order_id, "pay_failed", status="failed")
    sandbox.pay(order_id, "pay_authorized", status="authorized")
    sandbox.pay(order_id, "pay_captured")
    sandbox.pay(order_id, "pay_refunded")
    gateway.refund("pay_refunded", Decimal("2500.00"), "INR", "refund-of-pay-refunded")

    assert sandbox.payments["pay_refunded"]["status"] == "refunded"
    assert gateway.captured_payments(order_id) == ["pay_captured", "pay_refunded"]


def test_an_order_without_payments_has_no_captures(gateway):
    order_id = gateway.create_order(amount=Decimal("10.00"), currency="INR", receipt="TXNTEST00000001")

    assert gateway.captured_payments(order_id) == []


# --- Refunds --------------------------------------------------------------------------------------------------------

def test_a_refund_is_sent_in_paise_carrying_our_refund_id(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox, "12345.67")

    made = gateway.refund(payment_id, Decimal("12345.67"), "INR", "0b7e1c1e-8f7d-4a59-9c43-3f1e0c7d2a10")

    held = sandbox.refunds[made.provider_refund_id]
    assert made.status == "processed" and made.provider_refund_id.startswith("rfnd_")
    assert (held["amount"], held["payment_id"]) == (1234567, payment_id)
    assert held["notes"] == {"refund_id": "0b7e1c1e-8f7d-4a59-9c43-3f1e0c7d2a10"}
    assert held["receipt"] == "0b7e1c1e-8f7d-4a59-9c43-3f1e0c7d2a10"


def test_a_refund_razorpay_holds_as_pending_is_found_processed_once_it_settles(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox)
    sandbox.configure("pending")

    made = gateway.refund(payment_id, Decimal("2500.00"), "INR", "refund-1")
    assert made.status == "pending"
    assert gateway.find_refund(payment_id, "refund-1") == made

    sandbox.settle(made.provider_refund_id, "processed")
    assert gateway.find_refund(payment_id, "refund-1").status == "processed"


def test_a_refund_razorpay_failed_is_found_failed(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox)
    sandbox.configure("pending")
    made = gateway.refund(payment_id, Decimal("2500.00"), "INR", "refund-1")

    sandbox.settle(made.provider_refund_id, "failed")

    assert gateway.find_refund(payment_id, "refund-1").status == "failed"


def test_no_refund_is_found_for_a_refund_id_razorpay_never_saw(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox)
    gateway.refund(payment_id, Decimal("100.00"), "INR", "another-refund")

    assert gateway.find_refund(payment_id, "refund-1") is None


def test_a_refund_is_found_among_more_than_a_page_of_the_payments_refunds(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox, "12345.67")
    ours = gateway.refund(payment_id, Decimal("1.00"), "INR", "ours")
    for n in range(105):  # newer refunds, listed before ours: ours is on the second page
        gateway.refund(payment_id, Decimal("1.00"), "INR", f"other-{n}")

    assert gateway.find_refund(payment_id, "ours") == ours
    assert [call["query"] for call in sandbox.calls[-2:]] == [{"count": "100", "skip": "0"},
                                                               {"count": "100", "skip": "100"}]


def test_a_refund_sent_again_after_failing_is_the_one_found(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox)
    sandbox.configure("pending")
    first = gateway.refund(payment_id, Decimal("2500.00"), "INR", "refund-1")
    sandbox.settle(first.provider_refund_id, "failed")
    sandbox.configure("processed")

    second = gateway.refund(payment_id, Decimal("2500.00"), "INR", "refund-1")

    assert gateway.find_refund(payment_id, "refund-1") == second != first


def test_a_processed_refund_counts_over_a_later_one_that_failed(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox)
    processed = gateway.refund(payment_id, Decimal("100.00"), "INR", "refund-1")
    sandbox.configure("pending")
    later = gateway.refund(payment_id, Decimal("100.00"), "INR", "refund-1")
    sandbox.settle(later.provider_refund_id, "failed")

    assert gateway.find_refund(payment_id, "refund-1") == processed


def test_a_refund_whose_answer_was_lost_is_found_by_its_refund_id(gateway, sandbox):
    payment_id = captured_payment(gateway, sandbox)
    sandbox.fail_next("lost_answer", operation="refund")

    with pytest.raises(TransientGatewayError):
        gateway.refund(payment_id, Decimal("2500.00"), "INR", "refund-1")

    [held] = sandbox.refunds.values()
    found = gateway.find_refund(payment_id, "refund-1")
    assert (found.provider_refund_id, found.status) == (held["id"], "processed")


# --- Errors ---------------------------------------------------------------------------------------------------------

OPERATIONS = {
    "create_order": lambda g, payment_id: g.create_order(amount=Decimal("10.00"), currency="INR", receipt="TXN1"),
    "order_payments": lambda g, payment_id: g.captured_payments("order_unknown_but_faulted"),
    "refund": lambda g, payment_id: g.refund(payment_id, Decimal("10.00"), "INR", "refund-1"),
    "payment_refunds": lambda g, payment_id: g.find_refund(payment_id, "refund-1"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(("fault", "status", "error"), [
    ("timeout", None, TransientGatewayError),
    ("5xx", 500, TransientGatewayError),
    ("5xx", 503, TransientGatewayError),
    ("4xx", 429, TransientGatewayError),  # too many requests: the same call may pass later
    ("4xx", 400, PermanentGatewayError),
    ("4xx", 404, PermanentGatewayError),
])
def test_every_call_maps_razorpays_failures_to_transient_or_permanent(gateway, sandbox, operation, fault, status,
                                                                      error):
    payment_id = captured_payment(gateway, sandbox)
    sandbox.fail_next(fault, operation=operation, status=status, seconds=TIMEOUT * 4)

    with pytest.raises(error) as raised:
        OPERATIONS[operation](gateway, payment_id)

    assert str(raised.value).startswith(("POST /v1/", "GET /v1/"))
    if fault == "timeout":
        assert "no answer from Razorpay within 0.5 s" in str(raised.value)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_call_to_a_razorpay_that_refuses_connections_is_transient(operation):
    unreachable = RazorpayGateway(key_id=KEY_ID, key_secret=KEY_SECRET, webhook_secret=WEBHOOK_SECRET,
                                  base_url="http://127.0.0.1:1", timeout_seconds=TIMEOUT)

    with pytest.raises(TransientGatewayError, match="could not be reached"):
        OPERATIONS[operation](unreachable, "pay_any")


def test_wrong_keys_are_a_permanent_refusal(server):
    wrong = RazorpayGateway(key_id=KEY_ID, key_secret="not-the-secret", webhook_secret=WEBHOOK_SECRET,
                            base_url=server.url, timeout_seconds=TIMEOUT)

    with pytest.raises(PermanentGatewayError, match="401 BAD_REQUEST_ERROR: Authentication failed"):
        wrong.create_order(amount=Decimal("10.00"), currency="INR", receipt="TXN1")


def test_refunding_an_unknown_payment_is_a_permanent_refusal(gateway):
    with pytest.raises(PermanentGatewayError, match="The id provided does not exist"):
        gateway.refund("pay_unknown", Decimal("10.00"), "INR", "refund-1")


def test_a_failing_call_prints_nothing_on_stdout(gateway, sandbox, capfd):
    # stdout carries the JSON log lines; the SDK itself would print "Connection failed." there.
    sandbox.fail_next("lost_answer")

    with pytest.raises(TransientGatewayError):
        gateway.create_order(amount=Decimal("10.00"), currency="INR", receipt="TXN1")

    assert capfd.readouterr().out == ""


# --- Signatures -----------------------------------------------------------------------------------------------------

def test_razorpays_payment_signature_is_accepted(gateway):
    assert gateway.verify_payment("order_1", "pay_1", razorpay_signature("order_1", "pay_1"))


@pytest.mark.parametrize("signature", [
    razorpay_signature("order_1", "pay_2"),
    razorpay_signature("order_2", "pay_1"),
    razorpay_signature("order_1", "pay_1", secret="another-secret"),
    razorpay_signature("order_1", "pay_1")[:-1],
    "", "  ", "not-hex", "é" * 64,
])
def test_any_other_payment_signature_is_refused(gateway, signature):
    assert gateway.verify_payment("order_1", "pay_1", signature) is False


def test_a_webhook_signed_with_the_webhook_secret_over_the_raw_body_is_accepted(gateway):
    raw = json.dumps({"event": "payment.captured", "amount": 250000, "note": "₹ paid"}).encode()

    assert gateway.verify_webhook(raw, webhook_signature(raw))


@pytest.mark.parametrize(("raw", "signed"), [
    (b'{"event":"payment.captured","amount":250001}', b'{"event":"payment.captured","amount":250000}'),  # tampered
    (b'{"event":"payment.captured"} ', b'{"event":"payment.captured"}'),  # a byte added
    (b'\xff\xfe not utf-8', b'\xff\xfe not utf-8'),
])
def test_a_webhook_body_other_than_the_one_signed_is_refused(gateway, raw, signed):
    assert gateway.verify_webhook(raw, webhook_signature(signed)) is False


@pytest.mark.parametrize("secret", [KEY_SECRET, "another-secret"])
def test_a_webhook_signed_with_another_secret_is_refused(gateway, secret):
    raw = b'{"event":"payment.captured"}'

    assert gateway.verify_webhook(raw, webhook_signature(raw, secret)) is False


# --- The service with GATEWAY=razorpay ------------------------------------------------------------------------------

def send_refunds(app) -> str:
    result = app.test_cli_runner().invoke(args=["send-refunds"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def reconcile(app) -> list[str]:
    result = app.test_cli_runner().invoke(args=["reconcile-payments"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout.splitlines()


def refund_row(app) -> Refund:
    with app.app_context():
        refund = db.session.scalars(select(Refund)).one()
        db.session.expunge(refund)
        return refund


def confirm_with_razorpay(app, client, user, payment, paid: dict):
    return confirm(app, client, user, payment, provider_payment_id=paid["razorpay_payment_id"],
                   sig=paid["razorpay_signature"])


def cancelled_payment(app, client) -> tuple[dict, dict]:
    """A customer's payment (its Razorpay order created), cancelled by its owner; returns (user, payment)."""
    user = register(client)
    payment = make_payment(app, client, user)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"]).status_code == 200
    return user, payment


def late_capture(app, client, sandbox) -> dict:
    """Razorpay captures a cancelled payment and the confirm arrives: refused, its refund REQUESTED."""
    user, payment = cancelled_payment(app, client)
    paid = sandbox.pay(payment["provider_order_id"])
    assert confirm_with_razorpay(app, client, user, payment, paid).status_code == 409
    return paid


def test_a_payment_confirmed_with_razorpays_signature_books_the_cart(app, client, sandbox):
    user = register(client)
    payment = make_payment(app, client, user)
    paid = sandbox.pay(payment["provider_order_id"])

    answer = confirm_with_razorpay(app, client, user, payment, paid)

    assert answer.status_code == 200, answer.json
    assert (answer.json["payment"]["status"], answer.json["booking"]["status"]) == ("SUCCESS", "CONFIRMED")
    assert paid["razorpay_signature"] == razorpay_signature(payment["provider_order_id"], paid["razorpay_payment_id"])


def test_a_late_capture_is_refunded_by_razorpay_with_razorpays_refund_id(app, client, sandbox):
    paid = late_capture(app, client, sandbox)

    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"

    refund = refund_row(app)
    [held] = sandbox.refunds.values()
    assert (refund.status, refund.provider_refund_id, refund.attempts) == ("SUCCEEDED", held["id"], 1)
    assert (held["payment_id"], held["amount"], held["notes"]) == (paid["razorpay_payment_id"], 250000,
                                                                    {"refund_id": refund.id})
    assert sandbox.payments[paid["razorpay_payment_id"]]["status"] == "refunded"


def test_a_refund_whose_answer_was_lost_is_adopted_by_the_next_run_not_sent_again(app, client, clock, sandbox):
    late_capture(app, client, sandbox)
    sandbox.fail_next("lost_answer", operation="refund")

    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    assert refund_row(app).last_error.startswith("Transient gateway error: POST /v1/payments/")
    clock.advance(minutes=1)
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"

    [held] = sandbox.refunds.values()
    assert refund_row(app).provider_refund_id == held["id"]
    assert sum(call["operation"] == "refund" for call in sandbox.calls) == 1  # sent once, found once


def test_a_refund_razorpay_refuses_fails_with_its_reason(app, client, sandbox):
    paid = late_capture(app, client, sandbox)
    sandbox.fail_next("4xx", operation="refund")

    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"
    assert refund_row(app).last_error == ("The gateway refused the refund: POST /v1/payments/"
                                          f"{paid['razorpay_payment_id']}/refund: 400 BAD_REQUEST_ERROR: "
                                          "Refused by the sandbox, as it was told to.")


def test_a_capture_only_razorpay_saw_is_found_by_reconciliation_and_refunded_once(app, client, sandbox):
    _, payment = cancelled_payment(app, client)
    order, txn = payment["provider_order_id"], payment["transaction_id"]
    paid = sandbox.pay(order)  # the customer paid; we never heard
    pay_id = paid["razorpay_payment_id"]

    assert reconcile(app) == [f"Order {order} (payment {txn}, CANCELLED): {pay_id} refund requested",
                              "Checked 1 orders, found 1 captures, requested 1 refunds"]
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    # Refunded at Razorpay now, still a capture: known as ours.
    assert reconcile(app) == [f"Order {order} (payment {txn}, CANCELLED): {pay_id} already refunded",
                              "Checked 1 orders, found 1 captures, requested 0 refunds"]
    assert len(sandbox.refunds) == 1
    assert refund_row(app).status == "SUCCEEDED"


def test_reconciliation_that_cannot_reach_razorpay_asks_again_next_time(app, client, sandbox):
    _, payment = cancelled_payment(app, client)
    sandbox.pay(payment["provider_order_id"])
    sandbox.fail_next("timeout", operation="order_payments", seconds=TIMEOUT * 4)

    result = app.test_cli_runner().invoke(args=["reconcile-payments"])

    assert "the gateway did not answer (GET /v1/orders/" in result.stdout
    assert reconcile(app)[-1] == "Checked 1 orders, found 1 captures, requested 1 refunds"


def test_a_call_that_never_answers_gives_up_after_the_configured_timeout(gateway, sandbox):
    sandbox.fail_next("timeout", operation="create_order", seconds=TIMEOUT * 6)
    started = time.monotonic()

    with pytest.raises(TransientGatewayError):
        gateway.create_order(amount=Decimal("10.00"), currency="INR", receipt="TXN1")

    assert TIMEOUT <= time.monotonic() - started < TIMEOUT * 4
