"""The payment gateway seam, and the built-in offline gateway (Razorpay's signature scheme).

Errors are split the way a refund must treat them: a `TransientGatewayError`
(network, timeout, 5xx) may succeed if tried again later; a
`PermanentGatewayError` (4xx) will not. Both are `GatewayError`s, which is
all that starting a payment needs to know (it answers 502).
"""

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

_ORDER_ALPHABET = string.ascii_letters + string.digits


class GatewayError(Exception):
    """The gateway did not do what was asked."""


class TransientGatewayError(GatewayError):
    """Network, timeout or 5xx: the same call may succeed later."""


class PermanentGatewayError(GatewayError):
    """The gateway refused (4xx): the same call will fail again."""


@dataclass(frozen=True)
class GatewayRefund:
    """A refund as the gateway holds it."""

    provider_refund_id: str
    # processed: the money is on its way back; pending: the gateway accepted it and will settle it later
    # (a refund.processed or refund.failed event, or the next look); failed: the gateway gave up on it.
    status: Literal["processed", "pending", "failed"]


class PaymentGateway(Protocol):
    """What a real provider must implement."""

    # Its GATEWAY name, which also names the format of its webhook (web/webhook_formats.py).
    name: str

    def create_order(self, *, amount: Decimal, currency: str, receipt: str) -> str:
        """Create the provider's order and return its id."""

    def verify_payment(self, provider_order_id: str, provider_payment_id: str, signature: str) -> bool:
        """True when `signature` proves the provider captured this payment for this order."""

    def verify_webhook(self, raw_body: bytes, signature: str) -> bool:
        """True when `signature` proves the provider sent exactly `raw_body`."""

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, refund_id: str) -> GatewayRefund:
        """Refund `amount` of a captured payment, carrying our `refund_id` so that `find_refund` knows it."""

    def find_refund(self, provider_payment_id: str, refund_id: str) -> GatewayRefund | None:
        """The refund of this payment that carries our `refund_id`, if the gateway has one."""

    def captured_payments(self, provider_order_id: str) -> list[str]:
        """The ids of the provider payments of this order that the gateway captured."""


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _matches(expected: str, given: str) -> bool:
    # Constant time, so a forger learns nothing from how long a refusal takes.
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace"))


class OfflineGateway:
    """Creates orders locally, checks HMAC-SHA256 signatures and refunds at once; no network, no state.

    Its refund id is derived from our `refund_id`, so sending a refund again
    is harmless and gives the same answer; having no memory, it finds no
    earlier refund and knows of no capture beyond those the service is told
    of (by confirm and the webhook).
    """

    name = "offline"

    def __init__(self, secret: str, webhook_secret: str):
        self._secret = secret
        self._webhook_secret = webhook_secret

    def create_order(self, *, amount: Decimal, currency: str, receipt: str) -> str:
        return "order_" + "".join(secrets.choice(_ORDER_ALPHABET) for _ in range(14))

    def sign_payment(self, provider_order_id: str, provider_payment_id: str) -> str:
        return _hmac_hex(self._secret, f"{provider_order_id}|{provider_payment_id}".encode())

    def sign_webhook(self, raw_body: bytes) -> str:
        return _hmac_hex(self._webhook_secret, raw_body)

    def verify_payment(self, provider_order_id: str, provider_payment_id: str, signature: str) -> bool:
        return _matches(self.sign_payment(provider_order_id, provider_payment_id), signature)

    def verify_webhook(self, raw_body: bytes, signature: str) -> bool:
        return _matches(self.sign_webhook(raw_body), signature)

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, refund_id: str) -> GatewayRefund:
        return GatewayRefund(offline_refund_id(refund_id), "processed")

    def find_refund(self, provider_payment_id: str, refund_id: str) -> GatewayRefund | None:
        return None

    def captured_payments(self, provider_order_id: str) -> list[str]:
        return []


def offline_refund_id(refund_id: str) -> str:
    """The offline gateway's id for our refund: the same for every send of it."""
    return "rfnd_" + hashlib.sha256(refund_id.encode()).hexdigest()[:14]


def gateway_from(settings: dict) -> PaymentGateway:
    """The gateway named by the GATEWAY setting, or the object given in its place (a test's)."""
    chosen = settings["GATEWAY"]
    if not isinstance(chosen, str):
        return chosen
    if chosen == "razorpay":
        # Imported here: it imports this module's errors, and the offline gateway needs neither the SDK nor requests.
        from web.razorpay_gateway import RazorpayGateway  # noqa: PLC0415

        return RazorpayGateway(key_id=settings["RAZORPAY_KEY_ID"], key_secret=settings["RAZORPAY_KEY_SECRET"],
                               webhook_secret=settings["RAZORPAY_WEBHOOK_SECRET"],
                               base_url=settings["RAZORPAY_BASE_URL"],
                               timeout_seconds=settings["RAZORPAY_TIMEOUT_SECONDS"])
    return OfflineGateway(settings["GATEWAY_SECRET"], settings["GATEWAY_WEBHOOK_SECRET"])
