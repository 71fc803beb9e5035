"""The Razorpay gateway: the PaymentGateway protocol through Razorpay's official SDK (`razorpay` 2.0.1).

Every request is one of the SDK's calls (`order.create`, `order.payments`,
`payment.refund`, `payment.fetch_multiple_refund`) and every signature is
checked by its `utility`. What the SDK leaves undone, the `requests` session
it is given does (`_RazorpaySession`):
- a timeout on every call: the SDK sends none, so a silent Razorpay would
  hold a worker for ever;
- failures told apart the way a refund must treat them, by HTTP status: no
  answer, a timeout, a 5xx (and 408, 429) are transient; any other 4xx is
  permanent. The SDK names its errors by Razorpay's error code instead (a
  4xx and a 5xx may both be its `ServerError`), and prints to stdout when
  the network fails, where our log lines are JSON; so the session raises our
  errors before the SDK sees a failure.

Amounts go to Razorpay in paise, exactly: Decimal rupees * 100, never a float.
"""

from decimal import Decimal
from urllib.parse import urlsplit

import razorpay
import requests
from razorpay.constants.url import URL
from razorpay.errors import SignatureVerificationError

from web.gateway import GatewayError, GatewayRefund, PermanentGatewayError, TransientGatewayError

# Our refund_id rides in the refund's notes (and its receipt), so that find_refund recognises the refund.
REFUND_ID_NOTE = "refund_id"
# Razorpay lists a payment's refunds 10 at a time unless asked for more, and at most 100 a page.
REFUNDS_PAGE = 100
# A payment holds a handful of refunds; a gateway that keeps answering full pages is not believed past this.
MOST_REFUNDS_READ = 10_000
# When several refunds carry our refund_id (a failed one, then one sent again), the one that counts.
_PREFERRED = {"processed": 0, "pending": 1, "failed": 2}


def to_paise(amount: Decimal) -> int:
    """Rupees, as Razorpay's integer amount in paise."""
    paise = amount * 100
    if paise != paise.to_integral_value():
        raise ValueError(f"{amount} has a fraction of a paisa")
    return int(paise)


class _RazorpaySession(requests.Session):
    """The SDK's HTTP session: a timeout on every call, and each failure raised as our transient or permanent error."""

    def __init__(self, timeout_seconds: float):
        super().__init__()
        self.timeout_seconds = timeout_seconds

    def request(self, method, url, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_seconds
        call = f"{method.upper()} {urlsplit(url).path}"
        try:
            response = super().request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise TransientGatewayError(f"{call}: no answer from Razorpay within {self.timeout_seconds:g} s") from exc
        except requests.RequestException as exc:
            raise TransientGatewayError(f"{call}: Razorpay could not be reached ({type(exc).__name__})") from exc
        if not 200 <= response.status_code < 300:
            raise _refusal(call, response)
        if response.status_code != 204:
            try:
                response.json()
            except ValueError as exc:  # the SDK would print and raise a bare requests error
                raise TransientGatewayError(f"{call}: Razorpay's answer is not JSON") from exc
        return response


def _refusal(call: str, response: requests.Response) -> GatewayError:
    try:
        error = response.json()["error"]
        code, description = error.get("code", ""), error.get("description", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        code, description = "", response.reason
    status = response.status_code
    # 408 and 429 ask to come back later; a redirect is no answer to an API call.
    permanent = 400 <= status < 500 and status not in (408, 429)
    return (PermanentGatewayError if permanent else TransientGatewayError)(f"{call}: {status} {code}: {description}")


class RazorpayGateway:
    """Orders, signatures, refunds and the payments of an order, at Razorpay (or at RAZORPAY_BASE_URL).

    One instance per app, so one SDK client and one pooled session per
    process. Its refunds carry our refund_id in their notes and receipt;
    Razorpay refunds in the payment's own currency, so `refund` sends none.
    """

    name = "razorpay"

    def __init__(self, *, key_id: str, key_secret: str, webhook_secret: str, base_url: str = URL.BASE_URL,
                 timeout_seconds: float = 10):
        self._webhook_secret = webhook_secret
        self._client = razorpay.Client(session=_RazorpaySession(timeout_seconds), auth=(key_id, key_secret),
                                       base_url=base_url)

    def create_order(self, *, amount: Decimal, currency: str, receipt: str) -> str:
        order = self._client.order.create({"amount": to_paise(amount), "currency": currency, "receipt": receipt})
        return _text(order, "id")

    def verify_payment(self, provider_order_id: str, provider_payment_id: str, signature: str) -> bool:
        given = _hex(signature)
        if given is None:
            return False
        try:
            return self._client.utility.verify_payment_signature({
                "razorpay_order_id": provider_order_id, "razorpay_payment_id": provider_payment_id,
                "razorpay_signature": given})
        except SignatureVerificationError:
            return False

    def verify_webhook(self, raw_body: bytes, signature: str) -> bool:
        given = _hex(signature)
        if given is None:
            return False
        try:
            # The SDK signs text; Razorpay's bodies are UTF-8 JSON, which decodes and encodes back exactly.
            body = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        try:
            return self._client.utility.verify_webhook_signature(body, given, self._webhook_secret)
        except SignatureVerificationError:
            return False

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, refund_id: str) -> GatewayRefund:
        made = self._client.payment.refund(provider_payment_id, {
            "amount": to_paise(amount), "receipt": refund_id, "notes": {REFUND_ID_NOTE: refund_id}})
        return _gateway_refund(made)

    def find_refund(self, provider_payment_id: str, refund_id: str) -> GatewayRefund | None:
        carrying = []
        for skip in range(0, MOST_REFUNDS_READ, REFUNDS_PAGE):
            page = _items(self._client.payment.fetch_multiple_refund(
                provider_payment_id, {"count": REFUNDS_PAGE, "skip": skip}))
            carrying += [_gateway_refund(refund) for refund in page if _carries(refund, refund_id)]
            if len(page) < REFUNDS_PAGE:
                break
        return min(carrying, key=lambda refund: _PREFERRED[refund.status], default=None)

    def captured_payments(self, provider_order_id: str) -> list[str]:
        # `captured` stays true once a payment is refunded (status "refunded"): it was still captured. A refund
        # of ours is known by its provider payment, so reconciliation counts it as already refunded.
        payments = _items(self._client.order.payments(provider_order_id))
        return [_text(payment, "id") for payment in payments if payment.get("captured") is True]


def _hex(signature: str) -> str | None:
    # hmac.compare_digest refuses non-ASCII text; such a signature is simply wrong.
    given = signature.strip().lower() if isinstance(signature, str) else ""
    return given if given and given.isascii() else None


def _text(entity, key: str) -> str:
    value = entity.get(key) if isinstance(entity, dict) else None
    if not isinstance(value, str) or not value:
        raise TransientGatewayError(f"Razorpay's answer has no {key}")
    return value


def _items(collection) -> list[dict]:
    items = collection.get("items") if isinstance(collection, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise TransientGatewayError("Razorpay's answer is not a collection")
    return items


def _carries(refund: dict, refund_id: str) -> bool:
    notes = refund.get("notes")
    # Razorpay answers an empty `notes` as [] rather than {}.
    noted = notes.get(REFUND_ID_NOTE) if isinstance(notes, dict) else None
    return refund_id in (noted, refund.get("receipt"))


def _gateway_refund(refund) -> GatewayRefund:
    status = refund.get("status") if isinstance(refund, dict) else None
    # A status Razorpay may add later is not a settled refund: the job asks again, as for pending.
    return GatewayRefund(_text(refund, "id"), status if status in _PREFERRED else "pending")
