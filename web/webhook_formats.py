"""Each gateway's webhook format, read into the one event the service acts on (SPEC §3 webhook, §4 Gateways).

A format checks the signature over the raw body (401), then reads the
headers and the body into a `WebhookEvent` (400 if they are not such an
event); the webhook view has one path whatever the gateway. The format is
the gateway's (`gateway.name`), so a test's stand-in for the offline gateway
speaks the offline format. Its body model and headers also go into the
OpenAPI document of the app (web/openapi.py).
"""

import re
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import Headers

from web.errors import ApiError, field_errors
from web.gateway import PaymentGateway
from web.requests import json_object
from web.schemas import GatewayEvent, RazorpayEvent

# Razorpay's event ids are short letters and digits; ours are stored in a column of 128.
_EVENT_ID = re.compile(r"[!-~]{1,128}")


@dataclass(frozen=True)
class WebhookEvent:
    """A signed gateway event, in the one shape `persistence.webhooks.handle_event` applies."""

    event_id: str
    event: str
    # "" when the gateway names no order (a Razorpay payment made without one): no payment of ours has it.
    provider_order_id: str
    provider_payment_id: str
    provider_refund_id: str | None = None
    # Our refund_id as the gateway's refund carries it ("" for none: not a refund of ours); None where the
    # gateway's events do not say (the offline gateway's).
    refund_id: str | None = None


@dataclass(frozen=True)
class Header:
    """A request header of the format, for the OpenAPI document."""

    name: str
    pattern: str | None
    description: str


class WebhookFormat(Protocol):
    """How one gateway signs and shapes its webhook requests."""

    body: type[BaseModel]
    headers: tuple[Header, ...]

    def read(self, headers: Headers, raw: bytes, gateway: PaymentGateway) -> WebhookEvent:
        """The signed event of this request; ApiError 401 if it is not signed, 400 if it is not such an event."""


def _verify(gateway: PaymentGateway, raw: bytes, headers: Headers, name: str) -> None:
    signature = headers.get(name, "")
    if not signature or not gateway.verify_webhook(raw, signature):
        raise ApiError(401, "Unauthorized", f"Missing or invalid {name}.")


Model = TypeVar("Model", bound=BaseModel)


def _validated(model: type[Model], detail: str) -> Model:
    try:
        return model.model_validate(json_object())
    except ValidationError as exc:
        raise ApiError(400, "Invalid event", detail, fields=field_errors(exc)) from None


class OfflineWebhook:
    """The offline gateway's: our own body, signed in X-Gateway-Signature; it has no other events."""

    body = GatewayEvent
    headers = (Header("X-Gateway-Signature", None,
                      "hex(HMAC-SHA256(GATEWAY_WEBHOOK_SECRET, raw body)); missing or wrong is a 401."),)

    def read(self, headers: Headers, raw: bytes, gateway: PaymentGateway) -> WebhookEvent:
        _verify(gateway, raw, headers, "X-Gateway-Signature")
        event = _validated(GatewayEvent, "The body is not a payment.captured, payment.failed, refund.processed or "
                                         "refund.failed event.")
        return WebhookEvent(event.event_id, event.event, event.provider_order_id, event.provider_payment_id,
                            event.provider_refund_id)


class RazorpayWebhook:
    """Razorpay's: its event body, signed in X-Razorpay-Signature, its id in X-Razorpay-Event-Id.

    An event of a type the service does not act on is read too (`handle_event` answers it `ignored`): Razorpay
    retries a refusal for 24 hours and then disables the webhook, the four events that matter with it.
    """

    body = RazorpayEvent
    headers = (
        Header("X-Razorpay-Signature", None,
               "hex(HMAC-SHA256(RAZORPAY_WEBHOOK_SECRET, raw body)), as Razorpay signs; missing or wrong is a 401."),
        Header("X-Razorpay-Event-Id", f"^{_EVENT_ID.pattern}$",
               "Razorpay's id of the event, the same on each of its retries: an id seen before is answered "
               "`duplicate` and does nothing. Missing (on a signed body) is a 400."),
    )

    def read(self, headers: Headers, raw: bytes, gateway: PaymentGateway) -> WebhookEvent:
        _verify(gateway, raw, headers, "X-Razorpay-Signature")
        event_id = headers.get("X-Razorpay-Event-Id", "")
        if not _EVENT_ID.fullmatch(event_id):
            raise ApiError(400, "Invalid event", "X-Razorpay-Event-Id must be Razorpay's event id.",
                           fields={"X-Razorpay-Event-Id": "must be 1-128 visible ASCII characters"})
        event = _validated(RazorpayEvent, "The body is not a Razorpay webhook event.")
        payment = event.payload.payment.entity if event.payload.payment else None
        # A refund names its payment only; its order comes from the payment Razorpay sends along.
        order_id = payment.order_id if payment and payment.order_id else ""
        if event.event.startswith("refund.") and event.payload.refund is not None:
            refund = event.payload.refund.entity
            return WebhookEvent(event_id, event.event, order_id, refund.payment_id, refund.id,
                                refund_id=_carried_refund_id(refund.notes, refund.receipt))
        # An event not acted on may hold no payment (RazorpayEvent requires it of those acted on).
        return WebhookEvent(event_id, event.event, order_id, payment.id if payment else "")


def _carried_refund_id(notes: dict | list, receipt: str | None) -> str:
    noted = notes.get("refund_id") if isinstance(notes, dict) else None
    return noted if isinstance(noted, str) else receipt or ""


FORMATS: dict[str, WebhookFormat] = {"offline": OfflineWebhook(), "razorpay": RazorpayWebhook()}


def webhook_format(gateway: PaymentGateway) -> WebhookFormat:
    """The format of the gateway's webhook."""
    return FORMATS[gateway.name]
