"""The examples of /openapi.json: the README's walk-through, as the service writes it.

Asha registers, puts two deep tissue massages (2500.00 each) in a cart for
2030-07-20 at 10:30, pays 5000.00 and confirms; a second cart's payment is
cancelled, captured anyway and refunded. Answers are built with the response
models the views answer with, and the deletion examples with the deletion
policy itself, so each is written exactly as a real answer would be.
"""

import hashlib
import hmac
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from machines import BookingStatus, CartStatus, PaymentStatus, RefundStatus
from machines.deletion_policy import PaymentTiming, deletion_info
from web import responses as out
from web import schemas as body
from web.config import DEV_GATEWAY_SECRET

TIMEOUT_MINUTES = 30  # PAYMENT_TIMEOUT_MINUTES' default
USER_ID = "3f1c9a52-7d4e-4b8a-9c61-0e2d5b7a8f14"
SERVICE_ID = "5c0f3f4e-8a51-4d0c-9f43-2f6b9c1e7a10"
CART_ID = "9b2e6d41-3c7f-4a15-8e90-1d4c6b8a2f37"
ITEM_ID = "e4a7c2d9-6b13-4f58-a0e2-7c9d1b3f5a86"
BOOKING_ID = "71d3b8e5-2a94-4c6f-b1e7-5f8a0c2d4e93"
REFUND_ID = "c8e2f5a1-9d47-4b36-8a0c-3e6f1b7d9c25"
TXN = "TXN7Q2M4K9P1X8D"
TXN2 = "TXN3H8R5W1N6C2Z"
ORDER = "order_Kx3Qp8Lm2Vb7Rz"
TOKEN = "pV3m9Xk2Qe7Lr4Tn8Yb1Hc6Ws5Jd0Gf-Ua2Zo7Ni3E"
STARTED = datetime(2025, 7, 20, 3, 30, tzinfo=UTC)
PAID = STARTED + timedelta(minutes=2)
TOKEN_EXPIRES = STARTED + timedelta(minutes=1440)  # TOKEN_TTL_MINUTES' default
SIGNATURE = hmac.new(DEV_GATEWAY_SECRET.encode(), f"{ORDER}|pay_demo_1".encode(), hashlib.sha256).hexdigest()

# ---- request bodies --------------------------------------------------------------------------------------------

REQUESTS = {
    body.Registration: {"email": "asha@example.com", "password": "s3cret-pass"},
    body.Credentials: {"email": "asha@example.com", "password": "s3cret-pass"},
    body.NewService: {"name": "Deep tissue massage", "price": "2500.00", "duration_minutes": 60},
    body.Slot: {"selected_date": "2030-07-20", "selected_time": "10:30"},
    body.NewItem: {"service_id": SERVICE_ID, "quantity": 2},
    body.NewPayment: {"cart_id": CART_ID},
    body.Confirmation: {"provider_payment_id": "pay_demo_1", "signature": SIGNATURE},
    body.GatewayEvent: {"event_id": "evt_1", "event": "payment.captured", "provider_order_id": ORDER,
                        "provider_payment_id": "pay_demo_1"},
    body.RazorpayEvent: {"entity": "event", "event": "payment.captured", "payload": {
        "payment": {"entity": {"id": "pay_demo_1", "order_id": ORDER}}}},
    body.Empty: {},
}

# ---- answers ---------------------------------------------------------------------------------------------------

_SERVICE = out.ServiceOut(service_id=SERVICE_ID, name="Deep tissue massage", price=Decimal("2500.00"),
                          duration_minutes=60)
_ITEM = {"item_id": ITEM_ID, "service_id": SERVICE_ID, "name": "Deep tissue massage", "quantity": 2,
         "unit_price": Decimal("2500.00"), "line_total": Decimal("5000.00")}


def _cart(status: CartStatus = CartStatus.ACTIVE, *, items: bool = True, updated: datetime = STARTED) -> out.CartOut:
    return out.CartOut(cart_id=CART_ID, status=status, items=[_ITEM] if items else [],
                       total=Decimal("5000.00" if items else "0.00"), selected_date=date(2030, 7, 20),
                       selected_time=time(10, 30), created_at=STARTED - timedelta(minutes=5), updated_at=updated)


def _payment(status: PaymentStatus, *, transaction_id: str = TXN, booked: bool = False,
             updated: datetime = STARTED) -> out.PaymentOut:
    return out.PaymentOut(transaction_id=transaction_id, cart_id=CART_ID, status=status, amount=Decimal("5000.00"),
                          currency="INR", provider_order_id=ORDER, created_at=STARTED, updated_at=updated,
                          expires_at=STARTED + timedelta(minutes=TIMEOUT_MINUTES),
                          booking_id=BOOKING_ID if booked else None)


_BOOKING = out.BookingOut(booking_id=BOOKING_ID, cart_id=CART_ID, transaction_id=TXN,
                          status=BookingStatus.CONFIRMED.value, selected_date=date(2030, 7, 20),
                          selected_time=time(10, 30), items=[_ITEM], total=Decimal("5000.00"), created_at=PAID)
_REFUND = out.RefundOut(refund_id=REFUND_ID, transaction_id=TXN2, provider_payment_id="pay_demo_2",
                        amount=Decimal("2500.00"), currency="INR", status=RefundStatus.SUCCEEDED, attempts=1,
                        provider_refund_id="rfnd_4be1c09a7f3d52", last_error=None, created_at=PAID,
                        updated_at=PAID + timedelta(seconds=30))
_RETRIED = out.RefundOut(**{**_REFUND.model_dump(), "status": RefundStatus.REQUESTED, "attempts": 0,
                            "provider_refund_id": None, "last_error": "The gateway refused the refund.",
                            "updated_at": PAID + timedelta(hours=1)})
_HISTORY = [out.HistoryEntry(from_="INITIATED", to="PENDING", trigger="submit", actor=f"user:{USER_ID}",
                             at=STARTED, accepted=True),
            out.HistoryEntry(from_="PENDING", to="SUCCESS", trigger="succeed", actor=f"user:{USER_ID}", at=PAID,
                             accepted=True)]

# A cart whose payment started 12 minutes ago: deletion must wait 18 more minutes.
_NOW = STARTED + timedelta(minutes=12)
_WAIT = deletion_info(CartStatus.ACTIVE, [PaymentTiming(PaymentStatus.PENDING, STARTED)], now=_NOW,
                      timeout_minutes=TIMEOUT_MINUTES)
_FREE = deletion_info(CartStatus.ACTIVE, [PaymentTiming(PaymentStatus.CANCELLED, STARTED)], now=_NOW,
                      timeout_minutes=TIMEOUT_MINUTES)
_CLEANED = out.AutoCleanup.of(1, TIMEOUT_MINUTES)

ANSWERS = {
    out.Registered: out.Registered(user_id=USER_ID, email="asha@example.com", token=TOKEN,
                                   expires_at=TOKEN_EXPIRES),
    out.Token: out.Token(token=TOKEN, expires_at=TOKEN_EXPIRES),
    out.ServiceOut: _SERVICE,
    out.CartOut: _cart(),
    out.PaymentOut: _payment(PaymentStatus.PENDING),
    out.Confirmed: out.Confirmed(payment=_payment(PaymentStatus.SUCCESS, booked=True, updated=PAID),
                                 booking=_BOOKING, cart=_cart(CartStatus.CONVERTED, updated=PAID)),
    out.BookingOut: _BOOKING,
    out.HistoryEntry: _HISTORY[0],
    out.RefundOut: _REFUND,
    out.WebhookAck: out.WebhookAck(event_id="evt_1", outcome="captured"),
    out.DeletionStatus: out.DeletionStatus(
        can_delete=False, cart_status=CartStatus.ACTIVE, payments_count=1,
        payments=[out.PaymentSummary(transaction_id=TXN, status=PaymentStatus.PENDING, amount=Decimal("5000.00"),
                                     created_at=STARTED, age_minutes=12, has_booking=False)],
        deletion_info=_WAIT),
    out.CleanupResult: out.CleanupResult(cleanup_performed=True, payments_cancelled=1, message=_CLEANED.message,
                                         can_delete_now=True, deletion_info=_FREE),
    out.CartDeleted: out.CartDeleted(deleted_cart_id=CART_ID, auto_cleanup=_CLEANED),
    out.DeletionBlocked: out.DeletionBlocked.of(_WAIT, None),
    out.Health: out.Health(scheduler="running"),
    out.Unhealthy: out.Unhealthy(scheduler="running"),
    out.GatewayErrorBody: out.GatewayErrorBody(
        error="Bad Gateway", transaction_id=TXN,
        detail="The payment gateway could not create the order; the payment stays INITIATED and will time out. "
               "Start a new payment to retry."),
}
# Where one operation's answer differs from the model's example above: (method, path) -> answer.
OPERATION_ANSWERS = {
    ("delete", "/api/cart/carts/{cart_id}/items/{item_id}/"): _cart(items=False),
    ("post", "/api/payments/{transaction_id}/cancel/"): _payment(PaymentStatus.CANCELLED,
                                                                 updated=STARTED + timedelta(minutes=1)),
    ("get", "/api/payments/{transaction_id}/history/"): _HISTORY,
    ("post", "/api/admin/refunds/{refund_id}/retry/"): _RETRIED,
}

# ---- errors ----------------------------------------------------------------------------------------------------

ERRORS = {
    400: {"error": "Invalid request", "detail": "One or more fields are invalid.",
          "fields": {"quantity": "Input should be less than or equal to 99"}},
    401: {"error": "Unauthorized", "detail": "Send Authorization: Bearer <token>."},
    403: {"error": "Forbidden", "detail": "Only an administrator can add services."},
    404: {"error": "Not found", "detail": "No such cart."},
    413: {"error": "Request Entity Too Large", "detail": "The data value transmitted exceeds the capacity limit."},
    415: {"error": "Unsupported Media Type", "detail": "Send the body as application/json."},
    429: {"error": "Too Many Requests", "reason": "too_many_failed_logins",
          "detail": "Too many failed logins for this email or address; retry in 840 seconds."},
    502: ANSWERS[out.GatewayErrorBody].body(),
    503: {"error": "Service Unavailable", "detail": "The database cannot be reached; retry shortly."},
}

# A 409 of each reason: the detail the service gives, in the walk-through's terms.
CONFLICTS = {
    "cart_not_active": "The cart is CONVERTED and can no longer be changed.",
    "cart_locked_by_payment": "The cart has a payment in progress; cancel the payment first to change it.",
    "cart_empty": "The cart has no items to pay for.",
    "booking_slot_missing": "Choose selected_date and selected_time before paying.",
    "amount_too_large": "The line or the cart total would exceed 9999999999.99; nothing changed.",
    "payment_not_pending": "The payment is CANCELLED, not PENDING; the capture was refused and recorded.",
    "payment_not_open": "The payment is CANCELLED; only an open payment can be cancelled.",
    "idempotency_key_reused": "This Idempotency-Key was already used with a different request body.",
    "idempotency_key_in_progress": "A request with this Idempotency-Key is still being processed; retry shortly.",
    "email_taken": "An account with this email already exists.",
    "cart_converted": "Cart has been converted to a booking and cannot be deleted.",
    "refund_not_failed": "The refund is SUCCEEDED; only a FAILED refund can be retried.",
    "state_conflict": "The resource changed state while the request ran; re-read it.",
}
# What some 409s add to the envelope, as the service sends it.
CONFLICT_EXTRAS = {
    "payment_not_pending": {"status": "CANCELLED"},
    "payment_not_open": {"status": "CANCELLED"},
    "refund_not_failed": {"status": "SUCCEEDED"},
    "cart_converted": {"error": "Cannot delete a converted cart", "booking_id": BOOKING_ID},
}


# Where one operation words a reason its own way: (view name, reason) -> detail.
OPERATION_CONFLICTS = {
    ("delete_cart", "cart_not_active"): "The cart is already DELETED.",
    ("create_payment", "cart_not_active"): "The cart is CONVERTED; only an ACTIVE cart can be paid for.",
    ("create_payment", "payment_not_open"): "The payment is CANCELLED: it was closed while the gateway created its "
                                            "order.",
}


def conflict(reason: str, view_name: str) -> dict:
    """The 409 body of `reason` from the operation of `view_name`, as the service sends it."""
    detail = OPERATION_CONFLICTS.get((view_name, reason), CONFLICTS[reason])
    return {"error": "Conflict", "detail": detail, "reason": reason, **CONFLICT_EXTRAS.get(reason, {})}

