"""Starting a payment: INITIATED, the gateway order, PENDING; with Idempotency-Key replays.

A key is claimed in the same transaction that records the payment, so of
many concurrent requests with one key exactly one creates a payment; the
others wait briefly for its answer and replay it.
"""

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from persistence import idempotency, payments
from persistence.db import db
from persistence.errors import Conflict
from persistence.models import IdempotencyKey
from web.gateway import GatewayError, PaymentGateway
from web.responses import payment_json

IN_FLIGHT_WAIT_SECONDS = 5.0
# A sync worker is killed after gunicorn's 30 s timeout: a key still unanswered this long after it was
# claimed belongs to a request that died between recording its payment and storing its answer.
ABANDONED_AFTER = timedelta(minutes=2)
_POLL_SECONDS = 0.05


def request_fingerprint(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def start_payment(user_id: str, cart_id: str, *, key: str | None, body: dict, gateway: PaymentGateway,
                  clock: Callable[[], datetime], currency: str, timeout_minutes: float,
                  actor: str) -> tuple[int, dict]:
    """Return (status, body) of the answer: 201 with the payment, or 502 if the gateway failed."""
    fingerprint = request_fingerprint(body)
    if key is not None and (seen := idempotency.find(user_id, key)) is not None:
        return _replay(seen, fingerprint, clock(), timeout_minutes)
    try:
        payment = payments.begin_payment(user_id, cart_id, currency=currency, now=clock(), actor=actor,
                                         idempotency=(key, fingerprint) if key is not None else None)
    except IntegrityError:
        db.session.rollback()
        if key is None or idempotency.find(user_id, key) is None:
            raise
        # A concurrent request with the same key recorded its payment first.
        return _replay(_await_answer(user_id, key), fingerprint, clock(), timeout_minutes)
    try:
        order_id = gateway.create_order(amount=payment.amount, currency=payment.currency,
                                        receipt=payment.transaction_id)
    except GatewayError:
        answer = 502, _gateway_failed(payment.transaction_id)
    else:
        view = payments.submit_payment(payment, order_id, actor=actor, now=clock())
        answer = 201, payment_json(view, timeout_minutes)
    if key is not None:
        idempotency.store_response(user_id, key, *answer)
    return answer


def _gateway_failed(transaction_id: str) -> dict:
    return {"error": "Bad Gateway", "transaction_id": transaction_id,
            "detail": "The payment gateway could not create the order; the payment stays INITIATED "
                      "and will time out. Start a new payment to retry."}


def _replay(seen: IdempotencyKey, fingerprint: str, now: datetime, timeout_minutes: float) -> tuple[int, dict]:
    if seen.request_hash != fingerprint:
        raise Conflict("idempotency_key_reused",
                       "This Idempotency-Key was already used with a different request body.")
    if seen.response_status is None:
        if now - seen.created_at >= ABANDONED_AFTER:
            return _answer_abandoned(seen, timeout_minutes)
        seen = _await_answer(seen.user_id, seen.key)
    return seen.response_status, seen.response_body


def _answer_abandoned(seen: IdempotencyKey, timeout_minutes: float) -> tuple[int, dict]:
    """The request that claimed the key died before answering: answer, once and for all, from its payment."""
    view = payments.get_payment(seen.user_id, seen.transaction_id)
    if view.payment.provider_order_id is None:
        answer = 502, _gateway_failed(seen.transaction_id)
    else:
        answer = 201, payment_json(view, timeout_minutes)
    idempotency.store_response(seen.user_id, seen.key, *answer)
    return answer


def _await_answer(user_id: str, key: str) -> IdempotencyKey:
    """The first request with this key is still talking to the gateway: wait for its answer."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while True:
        db.session.rollback()  # end the transaction so the next read sees new commits
        seen = idempotency.find(user_id, key)
        if seen is not None and seen.response_status is not None:
            return seen
        if time.monotonic() >= deadline:
            raise Conflict("idempotency_key_in_progress",
                           "A request with this Idempotency-Key is still being processed; retry shortly.")
        time.sleep(_POLL_SECONDS)
