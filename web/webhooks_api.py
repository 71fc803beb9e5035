"""The gateway's webhook: signed by the gateway, no bearer token."""

from flask import Blueprint, current_app, request
from pydantic import ValidationError
from werkzeug.exceptions import MethodNotAllowed

from persistence.webhooks import handle_event
from web.clock import now
from web.errors import ApiError, field_errors
from web.requests import json_object, raw_body
from web.responses import WebhookAck
from web.schemas import GatewayEvent

bp = Blueprint("webhooks", __name__, url_prefix="/api/payments")


@bp.post("/webhook/")
def webhook():
    """Apply a signed gateway event once; 200 whenever it is recorded, whatever its outcome."""
    raw = raw_body()
    signature = request.headers.get("X-Gateway-Signature", "")
    if not signature or not current_app.extensions["gateway"].verify_webhook(raw, signature):
        raise ApiError(401, "Unauthorized", "Missing or invalid X-Gateway-Signature.")
    try:
        event = GatewayEvent.model_validate(json_object())
    except ValidationError as exc:
        raise ApiError(400, "Invalid event", "The body is not a payment.captured, payment.failed, refund.processed "
                       "or refund.failed event.", fields=field_errors(exc)) from None
    outcome = handle_event(event.event_id, event.event, event.provider_order_id, event.provider_payment_id,
                           event.provider_refund_id, now=now())
    return WebhookAck(event_id=event.event_id, outcome=outcome).body()


@bp.route("/webhook/", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"])
def webhook_other_methods():
    """Only POST: claimed here, or `/api/payments/<transaction_id>/` would take the path as a payment id."""
    raise MethodNotAllowed(valid_methods=["POST", "OPTIONS"])
