"""The gateway's webhook: signed by the gateway, no bearer token."""

from flask import Blueprint, current_app, request
from werkzeug.exceptions import MethodNotAllowed

from persistence.webhooks import handle_event
from web.clock import now
from web.requests import raw_body
from web.responses import WebhookAck
from web.webhook_formats import webhook_format

bp = Blueprint("webhooks", __name__, url_prefix="/api/payments")


@bp.post("/webhook/")
def webhook():
    """Apply a signed gateway event once; 200 whenever it is recorded, whatever its outcome."""
    gateway = current_app.extensions["gateway"]
    event = webhook_format(gateway).read(request.headers, raw_body(), gateway)
    outcome = handle_event(event.event_id, event.event, event.provider_order_id, event.provider_payment_id,
                           event.provider_refund_id, refund_id=event.refund_id, now=now())
    return WebhookAck(event_id=event.event_id, outcome=outcome).body()


@bp.route("/webhook/", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"])
def webhook_other_methods():
    """Only POST: claimed here, or `/api/payments/<transaction_id>/` would take the path as a payment id."""
    raise MethodNotAllowed(valid_methods=["POST", "OPTIONS"])
