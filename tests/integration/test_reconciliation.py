"""Reconciliation (SPEC §4): captures the gateway holds for orders we closed are refunded, once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from persistence.db import db
from persistence.models import Refund
from tests.builders import confirm, make_cart, make_payment, register, send_webhook
from tests.conftest import requires_postgres
from tests.integration.support import history_rows
from web import reconciliation


@pytest.fixture
def app_config(gateway) -> dict:
    return {"GATEWAY": gateway}


def reconcile(app, *args: str, exit_code: int = 0) -> list[str]:
    result = app.test_cli_runner().invoke(args=["reconcile-payments", *args])
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    return result.stdout.splitlines()


def refunds(app) -> list[tuple]:
    with app.app_context():
        return [(r.transaction_id, r.provider_payment_id, r.status)
                for r in db.session.scalars(select(Refund).order_by(Refund.created_at, Refund.id))]


def cancelled(app, client, user, cart_id=None) -> dict:
    payment = make_payment(app, client, user, cart_id)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"]).status_code == 200
    return payment


def test_a_capture_we_never_heard_of_on_a_cancelled_payment_is_refused_recorded_and_refunded(app, client, gateway):
    user = register(client)
    payment = cancelled(app, client, user)
    order, txn = payment["provider_order_id"], payment["transaction_id"]
    gateway.capture(order, "pay_lost")

    assert reconcile(app) == [f"Order {order} (payment {txn}, CANCELLED): pay_lost refund requested",
                              "Checked 1 orders, found 1 captures, requested 1 refunds"]
    assert refunds(app) == [(txn, "pay_lost", "REQUESTED")]
    assert history_rows(app, "payment", txn)[-1][2:] == ("succeed", "cli:reconcile-payments", False)

    # Safe to run again: the capture is known now.
    assert reconcile(app) == [f"Order {order} (payment {txn}, CANCELLED): pay_lost already refunded",
                              "Checked 1 orders, found 1 captures, requested 0 refunds"]
    assert len(refunds(app)) == 1
    assert len([h for h in history_rows(app, "payment", txn) if not h[4]]) == 1  # one refusal, not one per run


def test_a_capture_already_refunded_through_the_webhook_is_not_refunded_again(app, client, gateway):
    user = register(client)
    payment = cancelled(app, client, user)
    gateway.capture(payment["provider_order_id"], "pay_late")
    assert send_webhook(app, client, {"event_id": "evt_1", "event": "payment.captured",
                                      "provider_order_id": payment["provider_order_id"],
                                      "provider_payment_id": "pay_late"}).json["outcome"] == "refused"

    assert reconcile(app)[-1] == "Checked 1 orders, found 1 captures, requested 0 refunds"
    assert len(refunds(app)) == 1


def test_failed_and_superseded_payments_are_checked_and_only_orders_with_captures_are_listed(app, client, gateway):
    user = register(client)
    cart = make_cart(app, client, user)
    winner = make_payment(app, client, user, cart["cart_id"])
    superseded = make_payment(app, client, user, cart["cart_id"])
    assert confirm(app, client, user, winner, provider_payment_id="pay_won").status_code == 200
    failed = make_payment(app, client, user)
    assert send_webhook(app, client, {"event_id": "evt_f", "event": "payment.failed",
                                      "provider_order_id": failed["provider_order_id"],
                                      "provider_payment_id": "pay_declined"}).json["outcome"] == "failed"
    quiet = cancelled(app, client, user)
    gateway.capture(winner["provider_order_id"], "pay_won")  # its own success: checked, not a finding
    gateway.capture(superseded["provider_order_id"], "pay_sup")
    gateway.capture(failed["provider_order_id"], "pay_retried_and_captured")

    lines = reconcile(app)

    assert lines[-1] == "Checked 4 orders, found 2 captures, requested 2 refunds"
    assert sorted(lines[:-1]) == sorted([
        f"Order {superseded['provider_order_id']} (payment {superseded['transaction_id']}, CANCELLED): "
        "pay_sup refund requested",
        f"Order {failed['provider_order_id']} (payment {failed['transaction_id']}, FAILED): "
        "pay_retried_and_captured refund requested"])
    assert quiet["provider_order_id"] not in "\n".join(lines) and winner["provider_order_id"] not in "\n".join(lines)
    assert {r[1] for r in refunds(app)} == {"pay_sup", "pay_retried_and_captured"}


def test_only_payments_closed_within_the_window_are_checked(app, client, clock, gateway):
    user = register(client)
    old = cancelled(app, client, user)
    clock.advance(hours=3)
    recent = cancelled(app, client, user)
    gateway.capture(old["provider_order_id"], "pay_old")
    gateway.capture(recent["provider_order_id"], "pay_recent")

    assert reconcile(app, "--hours", "2")[-1] == "Checked 1 orders, found 1 captures, requested 1 refunds"
    assert [r[1] for r in refunds(app)] == ["pay_recent"]
    assert reconcile(app, "--hours", "3.5")[-1] == "Checked 2 orders, found 2 captures, requested 1 refunds"


@pytest.mark.parametrize("hours", ["0", "-1", "soon", "nan", "inf"])
def test_hours_must_be_a_positive_number(app, hours):
    result = app.test_cli_runner().invoke(args=["reconcile-payments", "--hours", hours])

    assert result.exit_code == 2
    assert "must be a positive number of hours" in result.output


def test_an_order_the_gateway_cannot_tell_us_about_is_reported_and_the_command_fails(app, client, gateway):
    user = register(client)
    payment = cancelled(app, client, user)
    gateway.capture(payment["provider_order_id"], "pay_lost")
    gateway.fail_next("captured_payments", "transient")

    lines = reconcile(app, exit_code=1)

    assert lines == [f"Order {payment['provider_order_id']} (payment {payment['transaction_id']}, CANCELLED): "
                     "the gateway did not answer (gateway timed out)",
                     "Checked 0 orders, found 0 captures, requested 0 refunds"]
    assert refunds(app) == []
    assert reconcile(app)[-1] == "Checked 1 orders, found 1 captures, requested 1 refunds"


@requires_postgres
def test_reconciliations_and_webhooks_at_once_request_one_refund(app, client, gateway):
    user = register(client)
    payment = cancelled(app, client, user)
    gateway.capture(payment["provider_order_id"], "pay_lost")
    start = threading.Barrier(6)
    event = {"event": "payment.captured", "provider_order_id": payment["provider_order_id"],
             "provider_payment_id": "pay_lost"}

    def racer(n: int):
        start.wait(timeout=10)
        if n < 3:
            with app.app_context():  # CliRunner swaps sys.stdout: not for threads
                return reconciliation.reconcile(gateway, clock=app.config["CLOCK"], hours=24).summary()
        return send_webhook(app, app.test_client(), {**event, "event_id": f"evt_{n}"}).json["outcome"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(racer, range(6)))

    assert refunds(app) == [(payment["transaction_id"], "pay_lost", "REQUESTED")]
    requested = sum(a.endswith("requested 1 refunds") for a in answers[:3])
    assert answers[3:] == ["refused"] * 3 and requested <= 1


def test_a_second_capture_on_a_paid_order_that_never_reached_us_is_refunded(app, client, gateway):
    user = register(client)
    payment = make_payment(app, client, user)
    order, txn = payment["provider_order_id"], payment["transaction_id"]
    gateway.capture(order, "pay_first_never_told")
    gateway.capture(order, "pay_second")
    assert confirm(app, client, user, payment, provider_payment_id="pay_second").status_code == 200

    assert reconcile(app) == [f"Order {order} (payment {txn}, SUCCESS): pay_first_never_told refund requested",
                              "Checked 1 orders, found 1 captures, requested 1 refunds"]
    assert refunds(app) == [(txn, "pay_first_never_told", "REQUESTED")]
    assert len(client.get("/api/bookings/", headers=user["headers"]).json) == 1  # the booking stands
