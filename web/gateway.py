"""The payment gateway seam, and the built-in offline gateway (Razorpay's signature scheme)."""

import hashlib
import hmac
import secrets
import string
from decimal import Decimal
from typing import Protocol

_ORDER_ALPHABET = string.ascii_letters + string.digits


class GatewayError(Exception):
    """The gateway could not create the order (the API answers 502)."""


class PaymentGateway(Protocol):
    """What a real provider must implement."""

    def create_order(self, *, amount: Decimal, currency: str, receipt: str) -> str:
        """Create the provider's order and return its id."""

    def verify_payment(self, provider_order_id: str, provider_payment_id: str, signature: str) -> bool:
        """True when `signature` proves the provider captured this payment for this order."""

    def verify_webhook(self, raw_body: bytes, signature: str) -> bool:
        """True when `signature` proves the provider sent exactly `raw_body`."""


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _matches(expected: str, given: str) -> bool:
    # Constant time, so a forger learns nothing from how long a refusal takes.
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace"))


class OfflineGateway:
    """Creates orders locally and checks HMAC-SHA256 signatures; no network."""

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
