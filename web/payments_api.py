"""Payments: start, read, confirm, cancel, history, refunds."""

import re

from flask import Blueprint, current_app, request

from persistence import payments, refund_queries
from persistence.history import history
from web.auth import actor, current_user, require_token
from web.checkout import start_payment
from web.clock import now
from web.errors import ApiError
from web.requests import json_object, parse
from web.schemas import Confirmation, Empty, NewPayment
from web.responses import Confirmed, history_json, payment_json, refund_json

bp = require_token(Blueprint("payments", __name__, url_prefix="/api/payments"))

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _timeout() -> float:
    return current_app.config["PAYMENT_TIMEOUT_MINUTES"]


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(400, "Invalid request", "Idempotency-Key must be 1-255 visible ASCII characters.",
                       fields={"Idempotency-Key": "must be 1-255 visible ASCII characters"})
    return key


@bp.post("/")
def create_payment():
    """Start a payment for the caller's cart (replayed for a repeated Idempotency-Key)."""
    key = _idempotency_key()
    body = json_object()
    cart_id = NewPayment.model_validate(body).cart_id
    status, answer = start_payment(
        current_user().id, cart_id, key=key, body=body, gateway=current_app.extensions["gateway"],
        clock=current_app.config["CLOCK"], currency=current_app.config["CURRENCY"],
        timeout_minutes=_timeout(), actor=actor())
    return answer, status


@bp.get("/<transaction_id>/")
def get_payment(transaction_id: str):
    """Show one of the caller's payments."""
    return payment_json(payments.get_payment(current_user().id, transaction_id), _timeout())


@bp.get("/<transaction_id>/history/")
def payment_history(transaction_id: str):
    """The payment's transitions, refused captures included, oldest first."""
    payments.find_payment(current_user().id, transaction_id)
    return history_json(history("payment", transaction_id))


@bp.get("/<transaction_id>/refunds/")
def payment_refunds(transaction_id: str):
    """The refunds of one of the caller's payments, oldest first."""
    return [refund_json(r) for r in refund_queries.refunds_of_payment(current_user().id, transaction_id)]


@bp.post("/<transaction_id>/confirm/")
def confirm(transaction_id: str):
    """Verify the gateway's signature and turn the payment into a booking."""
    body = parse(Confirmation)
    gateway = current_app.extensions["gateway"]
    captured = payments.confirm(current_user().id, transaction_id, body.provider_payment_id, body.signature,
                                verify=gateway.verify_payment, actor=actor(), now=now())
    return Confirmed.of(captured, _timeout()).body()


@bp.post("/<transaction_id>/cancel/")
def cancel(transaction_id: str):
    """Cancel one of the caller's open payments."""
    parse(Empty)
    return payment_json(payments.cancel(current_user().id, transaction_id, actor=actor(), now=now()), _timeout())
