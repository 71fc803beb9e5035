"""A refused capture requests a refund of that provider payment, once, whatever path it came by (SPEC §1)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import select

from persistence.db import db
from persistence.models import Refund
from tests.builders import confirm, make_cart, make_payment, pay_at_gateway, register, send_webhook
from tests.conftest import both_gateways, requires_postgres
from tests.integration.support import count, history_rows


def refunds(app) -> list[tuple]:
    with app.app_context():
        return [(r.transaction_id, r.provider_payment_id, r.amount, r.currency, r.status, r.attempts,
                 r.provider_refund_id, r.last_error)
                for r in db.session.scalars(select(Refund).order_by(Refund.created_at, Refund.id))]


def captured(payment, provider_payment_id: str, event_id: str) -> dict:
    return {"event_id": event_id, "event": "payment.captured", "provider_order_id": payment["provider_order_id"],
            "provider_payment_id": provider_payment_id}


def cancelled_payment(app, client, user) -> dict:
    payment = make_payment(app, client, user)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"]).status_code == 200
    return payment


@both_gateways
def test_a_capture_of_a_cancelled_payment_requests_its_refund_with_the_refusal(app, client):
    user = register(client)
    payment = cancelled_payment(app, client, user)

    response = confirm(app, client, user, payment, provider_payment_id="pay_late")

    assert response.status_code == 409 and response.json["reason"] == "payment_not_pending"
    assert refunds(app) == [(payment["transaction_id"], "pay_late", Decimal(payment["amount"]), "INR", "REQUESTED",
                             0, None, None)]
    assert history_rows(app, "payment", payment["transaction_id"])[-1][2:] == ("succeed", f"user:{user['user_id']}",
                                                                               False)


@both_gateways
def test_the_same_late_capture_by_every_path_and_again_requests_one_refund(app, client):
    user = register(client)
    payment = cancelled_payment(app, client, user)

    answers = [confirm(app, client, user, payment, provider_payment_id="pay_late").status_code,
               send_webhook(app, client, captured(payment, "pay_late", "evt_a")).json["outcome"],
               send_webhook(app, client, captured(payment, "pay_late", "evt_a")).json["outcome"],
               send_webhook(app, client, captured(payment, "pay_late", "evt_b")).json["outcome"],
               confirm(app, client, user, payment, provider_payment_id="pay_late").status_code]

    assert answers == [409, "refused", "duplicate", "refused", 409]
    assert [r[1] for r in refunds(app)] == ["pay_late"]
    # Every refusal is recorded; only the refund is one.
    refused = [h for h in history_rows(app, "payment", payment["transaction_id"]) if not h[4]]
    assert len(refused) == 4


@both_gateways
def test_a_superseded_payment_captured_late_is_refunded_and_the_booking_stands(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    winner = make_payment(app, client, user, cart["cart_id"])
    loser = make_payment(app, client, user, cart["cart_id"])
    assert confirm(app, client, user, winner, provider_payment_id="pay_winner").status_code == 200

    assert confirm(app, client, user, loser, provider_payment_id="pay_loser").status_code == 409

    assert [(r[0], r[1]) for r in refunds(app)] == [(loser["transaction_id"], "pay_loser")]
    assert [b["transaction_id"] for b in client.get("/api/bookings/", headers=user["headers"]).json] == [
        winner["transaction_id"]]


@both_gateways
def test_a_second_charge_on_a_successful_payment_is_refunded_and_a_replay_is_not(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    assert confirm(app, client, user, payment, provider_payment_id="pay_first").status_code == 200

    replay = confirm(app, client, user, payment, provider_payment_id="pay_first")
    webhook_replay = send_webhook(app, client, captured(payment, "pay_first", "evt_replay"))
    assert (replay.status_code, webhook_replay.json["outcome"]) == (200, "already_captured")
    assert refunds(app) == []

    second = send_webhook(app, client, captured(payment, "pay_second", "evt_second"))

    assert second.json["outcome"] == "refused"
    assert [(r[0], r[1], r[4]) for r in refunds(app)] == [(payment["transaction_id"], "pay_second", "REQUESTED")]


@both_gateways
def test_a_capture_that_succeeds_requests_no_refund(app, client):
    user = register(client)
    payment = make_payment(app, client, user)

    assert confirm(app, client, user, payment).status_code == 200
    assert count(app, Refund) == 0


@both_gateways
def test_a_late_capture_is_refunded_once_by_the_refund_job(app, client):
    user = register(client)
    payment = cancelled_payment(app, client, user)
    charged = pay_at_gateway(app, payment)
    assert confirm(app, client, user, payment, provider_payment_id=charged).status_code == 409
    runner = app.test_cli_runner()

    first = runner.invoke(args=["send-refunds"]).stdout.strip()
    again = runner.invoke(args=["send-refunds"]).stdout.strip()

    assert (first, again) == ("Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry",
                              "Sent 0 refunds: 0 succeeded, 0 failed, 0 to retry")
    [(_, provider_payment_id, amount, _, status, attempts, provider_refund_id, _)] = refunds(app)
    assert (provider_payment_id, amount, status, attempts) == (charged, Decimal(payment["amount"]), "SUCCEEDED", 1)
    assert provider_refund_id.startswith("rfnd_")


@both_gateways
@requires_postgres
def test_twenty_late_captures_at_once_by_confirm_and_webhook_request_one_refund(app, client):
    user = register(client)
    payment = cancelled_payment(app, client, user)
    barrier = threading.Barrier(20)

    def late_capture(n: int) -> int:
        barrier.wait(timeout=30)
        if n % 2:
            return confirm(app, app.test_client(), user, payment, provider_payment_id="pay_late").status_code
        return send_webhook(app, app.test_client(), captured(payment, "pay_late", f"evt_{n % 4}")).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(late_capture, range(20)))

    assert sorted(set(statuses)) == [200, 409]
    assert [(r[1], r[4]) for r in refunds(app)] == [("pay_late", "REQUESTED")]
