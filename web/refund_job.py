"""The refund job: every due REQUESTED refund is sent to the gateway once, by one process.

One function, `send_refunds`, called by the scheduler every
REFUND_INTERVAL_SECONDS and by `flask --app web send-refunds`, and by nothing
else. Any number of processes may run it at once: a refund is claimed (and
its attempt counted) in a committed unit of work before the gateway is
asked, with SKIP LOCKED on PostgreSQL, so no two processes send it at the
same time (persistence/refunds.py).

A refund is never paid twice: before every send the job asks the gateway for
a refund carrying our key (persistence/refunds.py gateway_key), and takes
that one if it exists, processed, pending or failed. A refund the gateway
failed is FAILED here too; only an admin's retry sends again, under a new key. That
covers an answer lost on the way back, a process that died between the
gateway's refund and our record, and a resend after an admin's retry.
"""

import time
from dataclasses import dataclass, field

import structlog

from persistence import refunds
from web import metrics
from persistence.refunds import Attempt, ClaimedRefund
from web.gateway import GatewayRefund, PaymentGateway, PermanentGatewayError, TransientGatewayError

ACTOR = "scheduler:refund-job"

log = structlog.get_logger()


@dataclass
class RefundRun:
    """What one run sent: each refund it claimed ended succeeded, failed or to retry."""

    outcomes: dict[str, int] = field(default_factory=lambda: {"succeeded": 0, "failed": 0, "retry": 0})
    duration_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.outcomes.values())

    def summary(self) -> str:
        o = self.outcomes
        return f"Sent {self.sent} refunds: {o['succeeded']} succeeded, {o['failed']} failed, {o['retry']} to retry"


def send_refunds(gateway: PaymentGateway, *, clock, max_attempts: int, actor: str = ACTOR) -> RefundRun:
    """Send every refund due now, one claim at a time, until none is left for this process."""
    run = RefundRun()
    started = time.perf_counter()
    # One claim at a time: a claim's lease covers one send, however many refunds are due.
    while (refund := refunds.claim_next(now=clock())) is not None:
        attempt = _attempt(gateway, refund, max_attempts=max_attempts)
        outcome = refunds.record_attempt(refund, attempt, actor=actor, now=clock())
        run.outcomes[outcome] += 1
        _log_attempt(refund, attempt, outcome)
    run.duration_s = time.perf_counter() - started
    return run


def _attempt(gateway: PaymentGateway, refund: ClaimedRefund, *, max_attempts: int) -> Attempt:
    """Ask the gateway; never raises for what the gateway says."""
    try:
        found = gateway.find_refund(refund.provider_payment_id, refund.gateway_key)
        if found is not None:
            return _from_gateway(found)
        if refund.attempt > max_attempts:
            # Every allowed attempt failed for a reason that may pass, or never reported back; the gateway
            # holds no refund of ours, so none of them was paid: it is FAILED now, for an admin to see.
            return Attempt("failed", error=f"No attempts left: {max_attempts} attempts failed, and the gateway "
                                           "holds no refund of ours.")
        return _from_gateway(gateway.refund(refund.provider_payment_id, refund.amount, refund.currency,
                                            refund.gateway_key))
    except TransientGatewayError as exc:
        return Attempt("retry", error=f"Transient gateway error: {exc}")
    except PermanentGatewayError as exc:
        return Attempt("failed", error=f"The gateway refused the refund: {exc}")


def _from_gateway(found: GatewayRefund) -> Attempt:
    if found.status == "processed":
        return Attempt("succeeded", provider_refund_id=found.provider_refund_id)
    if found.status == "failed":
        return Attempt("failed", provider_refund_id=found.provider_refund_id,
                       error="The gateway reported that the refund failed.")
    return Attempt("pending", provider_refund_id=found.provider_refund_id)


def _log_attempt(refund: ClaimedRefund, attempt: Attempt, outcome: str) -> None:
    fields = dict(refund_id=refund.refund_id, provider_payment_id=refund.provider_payment_id,
                  attempt=refund.attempt, outcome=outcome, provider_refund_id=attempt.provider_refund_id)
    if outcome == "failed":
        log.error("refund.failed", error=attempt.error, **fields)
    elif outcome == "retry" and attempt.error:
        log.warning("refund.retry", error=attempt.error, **fields)


def report(run: RefundRun) -> None:
    """Count one finished run and log its `refunds.run` event."""
    metrics.record_refund_run(run.outcomes)
    log.info("refunds.run", sent=run.sent, **run.outcomes, duration_ms=round(run.duration_s * 1000, 2))
