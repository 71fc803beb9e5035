"""Refunds: a captured provider payment that bought no booking is refunded, exactly once.

A refund is requested in the unit of work that records the refused capture
(persistence/payments.py), under that payment's cart lock, so every path that
can refuse a capture (confirm, webhook, reconciliation) requests it the same
way; the unique provider_payment_id makes it one whatever the path.

The refund job (web/refund_job.py) sends it in three steps, so that no lock
is held while the gateway answers:
1. `claim_due` takes the due refunds (SKIP LOCKED: each by one process),
   counts the attempt, moves `next_attempt_at` a lease ahead, and commits. No
   other process takes the refund before the lease ends, and a process that
   dies mid-send leaves it to be tried again then. The lease outlasts the
   longest a send can take (two gateway calls, each bounded by its timeout).
2. The job asks the gateway, outside any transaction.
3. `record_attempt` writes what the gateway said, under the refund's lock; a
   refund to try again is due after the backoff, counted from the answer.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from machines import REFUND_MACHINE, InvalidTransition, RefundStatus
from machines.ids import new_uuid
from persistence import locks
from persistence.db import db
from persistence.errors import Conflict, NotFound
from persistence.models import Payment, Refund
from persistence.uow import UnitOfWork, unit_of_work
from persistence.writer import REFUND, transition

# Backoff after the n-th attempt: 1, 2, 4 … minutes, at most 60.
MAX_BACKOFF_MINUTES = 60
# How long a claim keeps a refund from other processes: well past a send's longest (find_refund and
# refund, each at most a connect and a read timeout; RAZORPAY_TIMEOUT_SECONDS is at most 60).
CLAIM_LEASE = timedelta(minutes=10)
LAST_ERROR_LENGTH = 500


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th attempt before the next one."""
    return timedelta(minutes=min(2 ** (max(attempts, 1) - 1), MAX_BACKOFF_MINUTES))


def request_refund(uow: UnitOfWork, payment: Payment, provider_payment_id: str, *, now: datetime) -> Refund:
    """The refund of `provider_payment_id`, requested now unless it already was; the payment's cart is locked."""
    refund = uow.session.scalar(select(Refund).where(Refund.provider_payment_id == provider_payment_id))
    if refund is None:
        refund = Refund(id=new_uuid(), transaction_id=payment.transaction_id,
                        provider_payment_id=provider_payment_id, amount=payment.amount, currency=payment.currency,
                        status=REFUND_MACHINE.initial.value, attempts=0, next_attempt_at=now, created_at=now,
                        updated_at=now)
        uow.session.add(refund)
    return refund


def is_requested(provider_payment_id: str) -> bool:
    """True once a refund of this provider payment exists, in whatever state."""
    return db.session.scalar(select(Refund.id).where(Refund.provider_payment_id == provider_payment_id)) is not None


@dataclass(frozen=True)
class ClaimedRefund:
    """A refund one process may send now: the attempt it is on, and what the gateway needs."""

    refund_id: str
    provider_payment_id: str
    amount: Decimal
    currency: str
    attempt: int


def claim_due(*, now: datetime, limit: int) -> list[ClaimedRefund]:
    """Claim up to `limit` due REQUESTED refunds for this process, oldest due first, and commit the claim."""
    with unit_of_work() as uow:
        due = uow.session.scalars(
            select(Refund).where(Refund.status == RefundStatus.REQUESTED.value, Refund.next_attempt_at <= now)
            .order_by(Refund.next_attempt_at, Refund.id).limit(limit).with_for_update(skip_locked=True)).all()
        for refund in due:
            # Counting the attempt is not a transition: the refund stays REQUESTED.
            refund.attempts += 1
            refund.next_attempt_at = now + CLAIM_LEASE
            refund.updated_at = now
        claimed = [ClaimedRefund(r.id, r.provider_payment_id, r.amount, r.currency, r.attempts) for r in due]
        uow.commit()
    return claimed


@dataclass(frozen=True)
class Attempt:
    """What the gateway said to one attempt."""

    # succeeded: refunded; pending: the gateway has it and will settle it; retry: a transient error;
    # failed: a permanent refusal.
    outcome: str
    provider_refund_id: str | None = None
    error: str | None = None


def record_attempt(claimed: ClaimedRefund, attempt: Attempt, *, actor: str, now: datetime) -> str:
    """Write what the gateway said; return the refund's outcome: succeeded, failed or retry.

    A transient error (or a refund the gateway holds as pending) leaves the
    refund REQUESTED, due again after the backoff, even after the last allowed attempt: the gateway may have refunded
    and lost its answer, so the job's next look asks it before failing the
    refund (web/refund_job.py). A refund that is no longer REQUESTED (a
    webhook settled it meanwhile) is left as it is.
    """
    with unit_of_work() as uow:
        refund = locks.lock_refund(claimed.refund_id)
        if refund.status != RefundStatus.REQUESTED:
            return refund.status.lower()
        if attempt.outcome == "succeeded":
            outcome = _settle(uow, refund, "succeed", actor=actor, now=now,
                              values={"provider_refund_id": attempt.provider_refund_id, "last_error": None})
        elif attempt.outcome == "failed":
            outcome = _settle(uow, refund, "fail", actor=actor, now=now, values={"last_error": _clip(attempt.error)})
        else:
            if attempt.provider_refund_id:
                refund.provider_refund_id = attempt.provider_refund_id
            refund.last_error = _clip(attempt.error)
            refund.next_attempt_at = now + backoff(claimed.attempt)
            refund.updated_at = now
            outcome = "retry"
        uow.commit()
    return outcome


def settle_from_gateway(provider_payment_id: str, provider_refund_id: str, succeeded: bool, *,
                        refund_id: str | None = None, actor: str, now: datetime, claim) -> str:
    """A refund.processed or refund.failed event: settle the REQUESTED refund of that provider payment.

    `claim` is the webhook's EventClaim; the outcome is recorded with it. `refund_id` is our refund_id as the
    gateway's refund carries it, where the gateway says (None where it does not): until we know the gateway's id
    for our refund, a refund carrying another refund_id, or none (""), is not ours, whatever its payment.
    """
    with unit_of_work() as uow:
        refund = locks.lock_refund_of_provider_payment(provider_payment_id)
        if not claim.take():
            return "duplicate"
        if not _names(refund, provider_refund_id, refund_id, succeeded):
            outcome = "unknown_refund"
        elif refund.status != RefundStatus.REQUESTED:
            outcome = "ignored"
        elif succeeded:
            outcome = _settle(uow, refund, "succeed", actor=actor, now=now,
                              values={"provider_refund_id": provider_refund_id, "last_error": None})
        else:
            outcome = _settle(uow, refund, "fail", actor=actor, now=now,
                              values={"provider_refund_id": provider_refund_id,
                                      "last_error": "The gateway reported that the refund failed."})
        claim.settle(outcome)
        uow.commit()
    return outcome


def retry(refund_id: str, *, actor: str, now: datetime) -> Refund:
    """An admin asks again: FAILED -> REQUESTED, due now, with a fresh count of attempts and no gateway refund."""
    with unit_of_work() as uow:
        refund = locks.lock_refund(refund_id)
        if refund is None:
            raise NotFound("refund")
        try:
            transition(uow.session, REFUND, refund.id, "retry", observed=refund.status, actor=actor, now=now,
                       # The gateway's failed refund paid nothing; the next send makes a new one.
                       values={"attempts": 0, "next_attempt_at": now, "provider_refund_id": None}, loaded=refund)
        except InvalidTransition:
            raise Conflict("refund_not_failed", f"The refund is {refund.status}; only a FAILED refund can be "
                                                "retried.", status=refund.status) from None
        uow.commit()
    return refund


def _names(refund: Refund | None, provider_refund_id: str, refund_id: str | None, succeeded: bool) -> bool:
    """Whether a gateway's refund event is about this refund of ours."""
    if refund is None:
        return False
    if refund.provider_refund_id is not None:
        return refund.provider_refund_id == provider_refund_id
    if not succeeded:
        # A failure of a gateway refund we never recorded may be an older one's, failed before an admin's
        # retry: it must not fail the new attempt. It paid nothing either way, and the job's next look
        # asks the gateway and sends anew if the refund it holds has failed.
        return False
    # Money went back: the event may come before the job recorded the gateway's answer (or after it was lost).
    return refund_id is None or refund_id == refund.id


def _settle(uow: UnitOfWork, refund: Refund, trigger: str, *, actor: str, now: datetime, values: dict) -> str:
    transition(uow.session, REFUND, refund.id, trigger, observed=refund.status, actor=actor, now=now,
               values=values, loaded=refund)
    return refund.status.lower()


def _clip(error: str | None) -> str | None:
    return error[:LAST_ERROR_LENGTH] if error else error
