"""The refund job (SPEC §3 Refunds, §4): each REQUESTED refund is sent once, backs off, fails for good, adopts."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import structlog
from sqlalchemy import select, text
from structlog.testing import capture_logs

from persistence.db import db
from persistence.models import Refund
from tests.builders import confirm, make_payment, register, send_webhook
from tests.conftest import requires_postgres
from tests.gateways import ScriptedGateway
from tests.integration.support import history_rows
from web import refund_job
from web.gateway import offline_refund_id


@pytest.fixture
def app_config(gateway) -> dict:
    return {"GATEWAY": gateway, "REFUND_MAX_ATTEMPTS": 4}


def late_capture(app, client, provider_payment_id: str = "pay_late") -> dict:
    """A payment cancelled by its owner, then captured: its refund is REQUESTED."""
    user = register(client)
    payment = make_payment(app, client, user)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"]).status_code == 200
    assert confirm(app, client, user, payment, provider_payment_id=provider_payment_id).status_code == 409
    return payment


def refund_of(app, provider_payment_id: str = "pay_late") -> Refund:
    with app.app_context():
        refund = db.session.scalar(select(Refund).where(Refund.provider_payment_id == provider_payment_id))
        db.session.expunge(refund)
        return refund


def send_refunds(app) -> str:
    result = app.test_cli_runner().invoke(args=["send-refunds"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_a_requested_refund_is_sent_once_and_succeeds(app, client, gateway):
    payment = late_capture(app, client)

    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    assert send_refunds(app) == "Sent 0 refunds: 0 succeeded, 0 failed, 0 to retry"

    refund = refund_of(app)
    assert (refund.status, refund.attempts, refund.last_error) == ("SUCCEEDED", 1, None)
    assert refund.provider_refund_id == offline_refund_id(refund.id)
    assert gateway.refund_calls == [(refund.id, "pay_late")]
    assert gateway.refunded_amount("pay_late") == refund.amount == payment_amount(payment)
    assert history_rows(app, "refund", refund.id) == [("REQUESTED", "SUCCEEDED", "succeed", "cli:send-refunds", True)]


def payment_amount(payment: dict):
    from decimal import Decimal

    return Decimal(payment["amount"])


def test_transient_errors_back_off_one_two_four_minutes_then_succeed(app, client, clock, gateway):
    late_capture(app, client)
    gateway.fail_next("refund", "transient", times=3)

    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    for wait in (1, 2, 4):
        refund = refund_of(app)
        assert refund.status == "REQUESTED" and refund.next_attempt_at == clock() + timedelta(minutes=wait)
        assert refund.last_error == "Transient gateway error: gateway timed out"
        clock.advance(minutes=wait, seconds=-1)
        assert send_refunds(app).startswith("Sent 0 refunds")  # not due yet
        clock.advance(seconds=1)
        send_refunds(app)

    refund = refund_of(app)
    assert (refund.status, refund.attempts, refund.last_error) == ("SUCCEEDED", 4, None)
    assert len(gateway.refund_calls) == 1  # the three transient errors never reached it


def test_backoff_doubles_up_to_an_hour():
    from persistence.refunds import backoff

    assert [backoff(n) for n in range(1, 10)] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60, 60)]


def test_a_permanent_refusal_fails_the_refund_at_error_level(app, client, gateway):
    late_capture(app, client)
    gateway.fail_next("refund", "permanent")

    with capture_logs() as logs:
        assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"

    refund = refund_of(app)
    assert refund.status == "FAILED"
    assert refund.last_error == "The gateway refused the refund: 400 BAD_REQUEST_ERROR: the payment cannot be refunded"
    assert [e["log_level"] for e in logs if e["event"] == "refund.failed"] == ["error"]
    assert [e for e in logs if e["event"] == "refund.transition"][0]["to"] == "FAILED"
    # A FAILED refund is not sent again by the job: only an admin's retry brings it back.
    assert send_refunds(app).startswith("Sent 0 refunds")


def test_after_the_last_allowed_attempt_fails_transiently_the_next_look_fails_the_refund(app, client, clock, gateway):
    late_capture(app, client)
    gateway.fail_next("refund", "transient", times=4)  # REFUND_MAX_ATTEMPTS=4

    outputs = []
    for _ in range(5):
        outputs.append(send_refunds(app))
        clock.advance(hours=1)

    assert outputs[3] == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"  # the 4th may have been paid
    assert outputs[4] == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"  # it was not: FAILED
    refund = refund_of(app)
    assert refund.status == "FAILED" and gateway.refund_calls == []
    assert refund.last_error == "No attempts left: 4 attempts failed, and the gateway holds no refund of ours."


def test_an_answer_lost_on_the_last_allowed_attempt_is_adopted_not_failed(app, client, clock, gateway):
    late_capture(app, client)
    gateway.fail_next("refund", "transient", times=3)
    gateway.fail_next("refund", "lost_answer")

    for _ in range(5):
        send_refunds(app)
        clock.advance(hours=1)

    refund = refund_of(app)
    assert refund.status == "SUCCEEDED" and len(gateway.refund_calls) == 1
    assert gateway.refunded_amount("pay_late") == refund.amount


def test_an_answer_lost_after_the_gateway_refunded_is_adopted_not_sent_again(app, client, clock, gateway):
    late_capture(app, client)
    gateway.fail_next("refund", "lost_answer")

    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    assert refund_of(app).status == "REQUESTED"
    clock.advance(minutes=1)
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"

    refund = refund_of(app)
    assert (refund.status, refund.provider_refund_id) == ("SUCCEEDED", offline_refund_id(refund.id))
    assert len(gateway.refund_calls) == 1  # the customer was refunded once
    assert gateway.refunded_amount("pay_late") == refund.amount


def test_a_process_that_died_after_its_claim_leaves_the_refund_to_the_next_run(app, client, clock, gateway):
    from persistence.refunds import claim_next

    late_capture(app, client)
    with app.app_context():
        assert claim_next(now=clock()) is not None  # ...and then the process died
    clock.advance(minutes=9, seconds=59)
    assert send_refunds(app).startswith("Sent 0 refunds")  # its claim holds for the lease

    clock.advance(seconds=1)
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    assert refund_of(app).attempts == 2 and len(gateway.refund_calls) == 1


def test_a_refund_the_gateway_holds_as_pending_is_settled_by_its_webhook_event(app, client, gateway):
    payment = late_capture(app, client)
    gateway.refund_status = "pending"

    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 0 failed, 1 to retry"
    refund = refund_of(app)
    assert (refund.status, refund.provider_refund_id) == ("REQUESTED", offline_refund_id(refund.id))

    event = refund_event(payment, refund.provider_refund_id, "refund.processed", "evt_rf_1")
    assert send_webhook(app, client, event).json["outcome"] == "succeeded"
    assert send_webhook(app, client, event).json["outcome"] == "duplicate"
    assert send_webhook(app, client, {**event, "event_id": "evt_rf_2", "event": "refund.failed"}).json[
        "outcome"] == "ignored"
    assert refund_of(app).status == "SUCCEEDED"
    assert [h[2] for h in history_rows(app, "refund", refund.id)] == ["succeed"]


def refund_event(payment: dict, provider_refund_id: str, event: str, event_id: str) -> dict:
    return {"event_id": event_id, "event": event, "provider_order_id": payment["provider_order_id"],
            "provider_payment_id": "pay_late", "provider_refund_id": provider_refund_id}


def test_a_refund_failed_event_fails_the_pending_refund_we_recorded(app, client, gateway):
    payment = late_capture(app, client)
    gateway.refund_status = "pending"
    send_refunds(app)
    provider_refund_id = refund_of(app).provider_refund_id

    answer = send_webhook(app, client, refund_event(payment, provider_refund_id, "refund.failed", "evt_rf_f"))

    assert answer.json["outcome"] == "failed"
    refund = refund_of(app)
    assert (refund.status, refund.provider_refund_id) == ("FAILED", provider_refund_id)
    assert refund.last_error == "The gateway reported that the refund failed."


def test_a_refund_failed_event_for_a_gateway_refund_we_never_recorded_changes_nothing(app, client, clock, gateway):
    payment = late_capture(app, client)
    gateway.refund_status = "pending"
    gateway.fail_next("refund", "lost_answer")
    send_refunds(app)  # the gateway holds a pending refund; we never heard its id
    refund = refund_of(app)
    gateway.settle(refund.id, "failed")
    made = gateway.refunds[refund.id][3].provider_refund_id

    answer = send_webhook(app, client, refund_event(payment, made, "refund.failed", "evt_rf_unrecorded"))

    assert answer.json["outcome"] == "unknown_refund" and refund_of(app).status == "REQUESTED"
    clock.advance(minutes=1)
    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"  # the next look takes it
    assert refund_of(app).provider_refund_id == made and len(gateway.refund_calls) == 1


def test_a_late_refund_failed_event_of_the_refund_before_an_admin_retry_does_not_fail_the_new_one(
        app, client, clock, gateway):
    from persistence import refunds

    payment = late_capture(app, client)
    gateway.refund_status = "pending"
    send_refunds(app)
    old = refund_of(app)
    gateway.settle(old.id, "failed")
    assert send_webhook(app, client, refund_event(payment, old.provider_refund_id, "refund.failed",
                                                  "evt_first")).json["outcome"] == "failed"
    with app.app_context():
        refunds.retry(old.id, actor="admin:test", now=clock())

    late = send_webhook(app, client, refund_event(payment, old.provider_refund_id, "refund.failed", "evt_again"))

    assert late.json["outcome"] == "unknown_refund" and refund_of(app).status == "REQUESTED"


def test_a_refund_event_for_a_refund_we_do_not_hold_is_recorded_and_changes_nothing(app, client):
    payment = late_capture(app, client)
    send_refunds(app)

    unknown = send_webhook(app, client, {**refund_event(payment, "rfnd_other", "refund.failed", "evt_u1")})
    no_such_payment = send_webhook(app, client, {**refund_event(payment, "rfnd_x", "refund.processed", "evt_u2"),
                                                 "provider_payment_id": "pay_never"})

    assert (unknown.json["outcome"], no_such_payment.json["outcome"]) == ("unknown_refund", "unknown_refund")
    assert refund_of(app).status == "SUCCEEDED"


def test_a_refund_event_without_provider_refund_id_is_a_400(app, client):
    payment = late_capture(app, client)
    event = refund_event(payment, "rfnd_1", "refund.processed", "evt_bad")
    del event["provider_refund_id"]

    answer = send_webhook(app, client, event)

    assert answer.status_code == 400 and refund_of(app).status == "REQUESTED"


def test_a_webhook_settling_the_refund_while_the_job_waits_on_the_gateway_wins_cleanly(app, client, gateway):
    payment = late_capture(app, client)
    refund_id = refund_of(app).id
    settled_meanwhile = []

    class SlowGateway(ScriptedGateway):
        def refund(self, *args, **kwargs):
            made = super().refund(*args, **kwargs)
            event = refund_event(payment, made.provider_refund_id, "refund.processed", "evt_meanwhile")
            settled_meanwhile.append(send_webhook(app, app.test_client(), event).json["outcome"])
            return made

    with app.app_context():
        run = refund_job.send_refunds(SlowGateway(), clock=app.config["CLOCK"], max_attempts=4)

    assert settled_meanwhile == ["succeeded"]
    assert run.outcomes == {"succeeded": 1, "failed": 0, "retry": 0}
    assert [h[2:] for h in history_rows(app, "refund", refund_id)] == [("succeed", "webhook:evt_meanwhile", True)]


def test_the_scheduled_run_logs_one_refunds_run_event(app, client):
    from scheduler import run_refunds

    late_capture(app, client)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        run_refunds(app)

    [event] = [e for e in logs if e["event"] == "refunds.run"]
    assert (event["sent"], event["succeeded"], event["failed"], event["retry"]) == (1, 1, 0, 0)
    assert event["job"] == "refund-job"
    assert refund_of(app).status == "SUCCEEDED"


@requires_postgres
def test_two_jobs_at_once_send_each_refund_once(app, client, gateway):
    for n in range(6):
        late_capture(app, client, provider_payment_id=f"pay_late_{n}")
    start = threading.Barrier(2)

    class SlowGateway(ScriptedGateway):
        def refund(self, *args, **kwargs):
            time.sleep(0.05)  # both runs are inside the gateway together
            return gateway.refund(*args, **kwargs)

        def find_refund(self, *args):
            return gateway.find_refund(*args)

    def run():
        start.wait(timeout=10)
        with app.app_context():
            return refund_job.send_refunds(SlowGateway(), clock=app.config["CLOCK"], max_attempts=4)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: run(), range(2)))

    assert sum(r.sent for r in runs) == 6 and all(r.sent for r in runs)
    assert sorted(pid for _, pid in gateway.refund_calls) == [f"pay_late_{n}" for n in range(6)]


@requires_postgres
def test_the_job_passes_over_a_refund_another_transaction_holds(app, client, database_url):
    from sqlalchemy import create_engine

    late_capture(app, client, provider_payment_id="pay_held")
    late_capture(app, client, provider_payment_id="pay_free")
    other = create_engine(database_url)
    try:
        with other.connect() as connection, ThreadPoolExecutor(max_workers=1) as pool:
            transaction = connection.begin()
            connection.execute(text("SELECT id FROM refunds WHERE provider_payment_id = 'pay_held' FOR UPDATE"))
            with app.app_context():
                job = pool.submit(lambda: send_refunds(app))
                try:
                    output = job.result(timeout=5)  # waiting for the lock would time out here
                finally:
                    transaction.rollback()
        assert output == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
        assert refund_of(app, "pay_held").status == "REQUESTED"
        assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    finally:
        other.dispose()


def test_a_refund_the_gateway_failed_without_telling_us_is_taken_as_failed_and_not_sent_again(
        app, client, clock, gateway):
    late_capture(app, client)
    gateway.refund_status = "pending"
    send_refunds(app)
    refund = refund_of(app)
    gateway.settle(refund.id, "failed")  # the gateway gave up on it, and its event never came
    clock.advance(minutes=1)

    assert send_refunds(app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"

    refund = refund_of(app)
    assert (refund.status, refund.last_error) == ("FAILED", "The gateway reported that the refund failed.")
    assert len(gateway.refund_calls) == 1  # only an admin's retry sends again


def test_an_admin_retry_of_a_failed_refund_sends_it_again(app, client, clock, gateway):
    from persistence import refunds

    late_capture(app, client)
    gateway.fail_next("refund", "permanent")
    send_refunds(app)
    refund_id = refund_of(app).id
    assert refund_of(app).status == "FAILED"

    with app.app_context():
        refunds.retry(refund_id, actor="admin:test", now=clock())
    assert (refund_of(app).status, refund_of(app).attempts) == ("REQUESTED", 0)
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"

    assert [h[:3] for h in history_rows(app, "refund", refund_id)] == [
        ("REQUESTED", "FAILED", "fail"), ("FAILED", "REQUESTED", "retry"), ("REQUESTED", "SUCCEEDED", "succeed")]
    assert gateway.refunded_amount("pay_late") == refund_of(app).amount and len(gateway.refund_calls) == 1


def test_an_admin_retry_after_a_refund_failed_event_sends_a_new_refund(app, client, clock, gateway):
    from persistence import refunds

    payment = late_capture(app, client)
    gateway.refund_status = "pending"
    send_refunds(app)
    refund = refund_of(app)
    gateway.settle(refund.id, "failed")
    event = refund_event(payment, refund.provider_refund_id, "refund.failed", "evt_rf_failed")
    assert send_webhook(app, client, event).json["outcome"] == "failed"
    gateway.refund_status = "processed"

    with app.app_context():
        refunds.retry(refund.id, actor="admin:test", now=clock())
    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"
    assert refund_of(app).provider_refund_id not in (None, refund.provider_refund_id)
    assert gateway.refunded_amount("pay_late") == refund.amount


def test_a_send_slower_than_the_backoff_is_not_sent_again_by_another_run(app, client, clock, gateway):
    late_capture(app, client)
    meanwhile = []

    class SlowGateway(ScriptedGateway):
        def refund(self, *args, **kwargs):
            clock.advance(minutes=5)  # far past the first backoff, within the claim's lease

            def another_run():
                with app.app_context():
                    return refund_job.send_refunds(gateway, clock=clock, max_attempts=4).sent

            with ThreadPoolExecutor(max_workers=1) as pool:
                meanwhile.append(pool.submit(another_run).result(timeout=10))
            return gateway.refund(*args, **kwargs)

        def find_refund(self, *args):
            return gateway.find_refund(*args)

    with app.app_context():
        run = refund_job.send_refunds(SlowGateway(), clock=clock, max_attempts=4)

    assert meanwhile == [0] and run.outcomes["succeeded"] == 1
    assert len(gateway.refund_calls) == 1
