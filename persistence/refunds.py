"""Refunds: a captured provider payment that bought no booking is refunded, exactly once.

A refund is requested in the unit of work that records the refused capture
(persistence/payments.py), under that payment's cart lock, so every path that
can refuse a capture (confirm, webhook, reconciliation) requests it the same
way; the unique provider_payment_id makes it one whatever the path.

The refund job (web/refund_job.py) sends one refund at a time in three
steps, so that no lock is held while the gateway answers:
1. `claim_next` takes one due refund (SKIP LOCKED: by one process), counts
   the attempt, moves `next_attempt_at` a lease ahead, and commits. No other
   process takes the refund before the lease ends, and a process that dies
   mid-send leaves it to be tried again then. The lease outlasts the longest
   one send can take (two gateway calls, each bounded by its timeout).
2. The job asks the gateway, outside any transaction.
3. `record_attempt` writes what the gateway said, under the refund's lock,
   if the claim is still the latest (its attempt and retry counts);
   a refund to try again is due after the backoff, counted from the answer.

The gateway knows our refund by `gateway_key`: the refund_id, and after an
admin's retry the refund_id and the retry's number, so that the new gateway
refund is never mistaken for the one that failed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
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

log = structlog.get_logger()


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


def gateway_key(refund_id: str, retries: int) -> str:
    """What the gateway's refund carries to name ours: the refund_id, then `/retry-N` after the N-th retry."""
    return refund_id if retries == 0 else f"{refund_id}/retry-{retries}"


@dataclass(frozen=True)
class ClaimedRefund:
    """A refund one process may send now: the attempt it is on, and what the gateway needs."""

    refund_id: str
    provider_payment_id: str
    amount: Decimal
    currency: str
    attempt: int
    retries: int
    gateway_key: str

    def holds(self, refund: Refund) -> bool:
        """Whether this claim is still the refund's latest: its attempt and retry counts are the token."""
        return (refund.attempts, refund.retries) == (self.attempt, self.retries)


def claim_next(*, now: datetime) -> ClaimedRefund | None:
    """Claim the refund due first for this process, and commit the claim; None when none is due."""
    with unit_of_work() as uow:
        refund = uow.session.scalar(
            select(Refund).where(Refund.status == RefundStatus.REQUESTED.value, Refund.next_attempt_at <= now)
            .order_by(Refund.next_attempt_at, Refund.id).limit(1).with_for_update(skip_locked=True))
        if refund is None:
            return None
        # Counting the attempt is not a transition: the refund stays REQUESTED.
        refund.attempts += 1
        refund.next_attempt_at = now + CLAIM_LEASE
        refund.updated_at = now
        claimed = ClaimedRefund(refund.id, refund.provider_payment_id, refund.amount, refund.currency,
                                refund.attempts, refund.retries, gateway_key(refund.id, refund.retries))
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
        if not claimed.holds(refund) and attempt.outcome != "succeeded":
            # The claim ran out and another process holds the refund now: it decides. (Money that went
            # back is a fact whoever heard of it.)
            return "retry"
        if attempt.outcome == "succeeded":
            outcome = _settle(uow, refund, "succeed", actor=actor, now=now,
                              values={"provider_refund_id": attempt.provider_refund_id, "last_error": None})
        elif attempt.outcome == "failed":
            outcome = _settle(uow, refund, "fail", actor=actor, now=now, values={
                "last_error": _clip(attempt.error),
                "provider_refund_id": attempt.provider_refund_id or refund.provider_refund_id})
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
    if outcome == "failed":
        log.error("refund.failed", refund_id=refund.id, provider_payment_id=provider_payment_id,
                  provider_refund_id=provider_refund_id, error=refund.last_error, actor=actor)
    return outcome


def retry(refund_id: str, *, actor: str, now: datetime) -> Refund:
    """An admin asks again: FAILED -> REQUESTED, due now, with a fresh count of attempts and a new gateway key."""
    with unit_of_work() as uow:
        refund = locks.lock_refund(refund_id)
        if refund is None:
            raise NotFound("refund")
        try:
            # A new gateway key: the failed gateway refund paid nothing, and the next send makes a new one.
            # Due now: no claim can be sending a FAILED refund (a claim that still looks records nothing,
            # its token being of the retry before).
            transition(uow.session, REFUND, refund.id, "retry", observed=refund.status, actor=actor, now=now,
                       values={"attempts": 0, "retries": refund.retries + 1, "provider_refund_id": None,
                               "next_attempt_at": now}, loaded=refund)
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
    if refund_id is not None:
        return refund_id == gateway_key(refund.id, refund.retries)
    if not succeeded:
        # A failure of a gateway refund we never recorded, nor can tell by its key, may be an older one's,
        # failed before an admin's retry: it must not fail the new attempt. The job's next look asks the
        # gateway for the refund under the current key and takes what it holds.
        return False
    # Money went back: the event may come before the job recorded the gateway's answer (or after it was lost).
    return True


def _settle(uow: UnitOfWork, refund: Refund, trigger: str, *, actor: str, now: datetime, values: dict) -> str:
    transition(uow.session, REFUND, refund.id, trigger, observed=refund.status, actor=actor, now=now,
               values=values, loaded=refund)
    return refund.status.lower()


def _clip(error: str | None) -> str | None:
    return error[:LAST_ERROR_LENGTH] if error else error
