"""Starting a payment: INITIATED, the gateway order, PENDING; with Idempotency-Key replays.

A key is claimed in the same transaction that records the payment
(persistence/idempotency.py), so of many concurrent requests with one key
exactly one creates a payment. Whatever that request answers once its payment
is recorded (201, 502, or 409 if the payment moved on meanwhile) is kept and
replayed to every later request with the key and the same body. While it is
still running the others are told at once to come back (409
`idempotency_key_in_progress`, Retry-After): a sync worker never waits for another.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from machines import InvalidTransition
from persistence import idempotency, payments
from persistence.errors import Conflict
from persistence.models import Payment
from persistence.writer import TransitionConflict
from web.errors import conflict_body
from web.gateway import GatewayError, PaymentGateway
from web.responses import payment_json

# A sync worker is killed after gunicorn's 30 s timeout, and every answer given once the payment is recorded
# is kept: a key still unanswered this long after it was claimed belongs to a request that died between
# recording its payment and storing its answer.
ABANDONED_AFTER = timedelta(minutes=2)
IN_PROGRESS_RETRY_SECONDS = 1


def request_fingerprint(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def start_payment(user_id: str, cart_id: str, *, key: str | None, body: dict, gateway: PaymentGateway,
                  clock: Callable[[], datetime], currency: str, timeout_minutes: float,
                  actor: str) -> tuple[int, dict]:
    """Return (status, body) of the answer: 201 with the payment, 502 if the gateway failed, 409 if it moved on."""
    fingerprint = request_fingerprint(body)
    now = clock()
    if key is not None and (seen := idempotency.find(user_id, key)) is not None and not idempotency.expired(seen, now):
        return _replay(seen, fingerprint, now, timeout_minutes)
    try:
        # A 409 refusing the cart (cart_not_active, cart_empty, booking_slot_missing) is raised here, before
        # anything is recorded: the key stays unclaimed (or expired), so a retry with it is judged afresh.
        payment = payments.begin_payment(user_id, cart_id, currency=currency, now=now, actor=actor,
                                         idempotency=(key, fingerprint) if key is not None else None)
    except IntegrityError:  # begin_payment's unit of work has rolled back
        if key is None or (seen := idempotency.find(user_id, key)) is None:
            raise
        # A concurrent request with the same key recorded its payment first.
        return _replay(seen, fingerprint, clock(), timeout_minutes)
    answer = _submit(payment, gateway, clock=clock, actor=actor, timeout_minutes=timeout_minutes)
    if key is None:
        return answer
    return idempotency.store_answer(user_id, key, payment.transaction_id, *answer)


def _submit(payment: Payment, gateway: PaymentGateway, *, clock: Callable[[], datetime], actor: str,
            timeout_minutes: float) -> tuple[int, dict]:
    """Create the gateway order and move the recorded payment to PENDING; every outcome is an answer to keep."""
    try:
        order_id = gateway.create_order(amount=payment.amount, currency=payment.currency,
                                        receipt=payment.transaction_id)
    except GatewayError:
        return 502, _gateway_failed(payment.transaction_id)
    try:
        view = payments.submit_payment(payment, order_id, actor=actor, now=clock())
    except (Conflict, TransitionConflict, InvalidTransition) as exc:
        # The payment was cancelled or timed out while the gateway answered. This refusal is the answer
        # to the request (and to its replays), exactly as the error handler would have given it.
        return 409, conflict_body(exc)
    return 201, payment_json(view, timeout_minutes)


def _gateway_failed(transaction_id: str) -> dict:
    return {"error": "Bad Gateway", "transaction_id": transaction_id,
            "detail": "The payment gateway could not create the order; the payment stays INITIATED "
                      "and will time out. Start a new payment to retry."}


def _replay(seen: idempotency.SeenKey, fingerprint: str, now: datetime, timeout_minutes: float) -> tuple[int, dict]:
    if seen.request_hash != fingerprint:
        raise Conflict("idempotency_key_reused",
                       "This Idempotency-Key was already used with a different request body.")
    if seen.response_status is not None:
        return seen.response_status, seen.response_body
    if now - seen.created_at >= ABANDONED_AFTER:
        return _answer_abandoned(seen, timeout_minutes)
    raise Conflict("idempotency_key_in_progress",
                   "A request with this Idempotency-Key is still being processed; retry shortly.",
                   retry_after_seconds=IN_PROGRESS_RETRY_SECONDS)


def _answer_abandoned(seen: idempotency.SeenKey, timeout_minutes: float) -> tuple[int, dict]:
    """The request that claimed the key died before answering: answer, once and for all, from its payment."""
    view = payments.get_payment(seen.user_id, seen.transaction_id)
    if view.payment.provider_order_id is None:
        answer = 502, _gateway_failed(seen.transaction_id)
    else:
        answer = 201, payment_json(view, timeout_minutes)
    return idempotency.store_answer(seen.user_id, seen.key, seen.transaction_id, *answer)
