"""Refund races a hostile review of issue 13 found: a batch outlasting its lease, a failed gateway refund, stamps."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from tests.gateways import ScriptedGateway
from tests.integration.test_refund_job import late_capture, refund_event, refund_of, send_refunds
from tests.builders import send_webhook
from web import refund_job


@pytest.fixture
def app_config(gateway) -> dict:
    return {"GATEWAY": gateway, "REFUND_MAX_ATTEMPTS": 4}


def test_a_batch_slower_than_the_claim_lease_is_not_sent_twice_by_the_next_run(app, client, clock, gateway):
    # Six late captures; the gateway answers each call in 55 s (within RAZORPAY_TIMEOUT_SECONDS, at most 60).
    # One run claims all six at once with one 10-minute lease, then sends them one after another:
    # 6 x (find_refund + refund) = 660 s. The lease ends while the sixth is being sent; the next
    # scheduler tick of another process claims it again and sends it too.
    for n in range(6):
        late_capture(app, client, provider_payment_id=f"pay_slow_{n}")
    lease_ends = clock() + refund_job.refunds.CLAIM_LEASE
    other_runs = []

    class SlowGateway(ScriptedGateway):
        def find_refund(self, *args):
            clock.advance(seconds=55)
            found = gateway.find_refund(*args)
            if clock() > lease_ends and not other_runs:
                # Another process's refund job ticks while this answer is on its way back.
                def another_run():
                    with app.app_context():
                        return refund_job.send_refunds(gateway, clock=clock, max_attempts=4).sent

                with ThreadPoolExecutor(max_workers=1) as pool:
                    other_runs.append(pool.submit(another_run).result(timeout=30))
            return found

        def refund(self, *args, **kwargs):
            clock.advance(seconds=55)
            return gateway.refund(*args, **kwargs)

    with app.app_context():
        refund_job.send_refunds(SlowGateway(), clock=clock, max_attempts=4)

    sent = [refund_id for refund_id, _ in gateway.refund_calls]
    assert len(sent) == len(set(sent)) == 6, f"a refund was sent to the gateway twice: {sent}"
    assert other_runs == [0], "another run sent a refund this run had claimed and was still sending"


def test_a_gateway_refund_that_failed_is_taken_as_failed_once_and_an_admin_retry_is_a_new_one(
        app, client, clock, gateway):
    # The gateway holds refund #1 as pending, then fails it. The job's next look takes #1 as it is,
    # FAILED, as the refund.failed event does: one rule, never a second gateway refund behind the
    # admin's back. The admin's retry sends #2 under a new key; a late refund.failed of #1 then
    # names a refund that is not ours any more and fails nothing.
    from persistence import refunds

    payment = late_capture(app, client)
    gateway.refund_status = "pending"
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    first = refund_of(app)
    gateway.settle(first.id, "failed")
    clock.advance(minutes=1)
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"
    event = refund_event(payment, first.provider_refund_id, "refund.failed", "evt_first_failed")
    assert send_webhook(app, client, event).json["outcome"] == "ignored"
    assert len(gateway.refund_calls) == 1

    gateway.refund_status = "processed"
    with app.app_context():
        refunds.retry(first.id, actor="admin:test", now=clock())
    late = {**event, "event_id": "evt_first_failed_again"}
    sent = []

    class LateEventMeanwhile(ScriptedGateway):
        def find_refund(self, *args):
            return gateway.find_refund(*args)

        def refund(self, *args, **kwargs):
            sent.append(send_webhook(app, app.test_client(), late).json["outcome"])
            return gateway.refund(*args, **kwargs)

    with app.app_context():
        refund_job.send_refunds(LateEventMeanwhile(), clock=clock, max_attempts=4)

    assert sent == ["unknown_refund"]
    refund = refund_of(app)
    assert refund.status == "SUCCEEDED" and refund.provider_refund_id != first.provider_refund_id
    assert gateway.refunded_amount("pay_late") == first.amount  # the customer got the money back, once


def test_a_refund_reconciliation_requests_is_stamped_when_it_is_requested_not_when_the_run_began(
        app, client, clock, gateway):
    # A run asks the gateway about every order closed in the last 24 hours, one call each (up to a minute
    # each with Razorpay). Each refund it requests is stamped with the run's start instead of the clock:
    # the admin list (newest first by created_at) then files it behind refunds requested meanwhile.
    from tests.builders import register
    from tests.integration.test_reconciliation import cancelled, reconcile
    from persistence.db import db
    from persistence.models import Refund
    from sqlalchemy import select

    user = register(client)
    first, second = cancelled(app, client, user), cancelled(app, client, user)
    gateway.capture(first["provider_order_id"], "pay_lost_1")
    gateway.capture(second["provider_order_id"], "pay_lost_2")
    started = clock()

    class SlowAnswers(ScriptedGateway):
        def captured_payments(self, provider_order_id):
            clock.advance(seconds=50)
            return gateway.captured_payments(provider_order_id)

    app.extensions["gateway"] = SlowAnswers()
    assert reconcile(app)[-1] == "Checked 2 orders, found 2 captures, requested 2 refunds"

    with app.app_context():
        stamped = sorted(r.created_at for r in db.session.scalars(select(Refund)))
    assert stamped == [started + timedelta(seconds=50), started + timedelta(seconds=100)], stamped
