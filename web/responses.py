"""Response bodies (SPEC §3) as pydantic models: the views answer with them, /openapi.json documents them.

Fields hold the values persistence hands over (datetime, Decimal, date,
time); each type below says how it is written in JSON (SPEC §2) and how the
document describes it, so the JSON and its schema come from one place.
"""

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from machines import BookingStatus, CartStatus, PaymentStatus, RefundStatus
from machines.deletion_policy import DeletionInfo as Deletability
from machines.deletion_policy import auto_cleanup_message
from machines.deletion_policy import expires_at as expiry_of
from machines.ids import TRANSACTION_ID_PATTERN, UUID_PATTERN
from machines.limits import MAX_QUANTITY
from persistence.bookings import BookingView
from persistence.carts import CartView
from persistence.deletion import DeletionStatus as DeletionState
from persistence.deletion import PaymentAge
from persistence.models import Refund, Service, TransitionRecord
from persistence.payments import Captured, PaymentView

CENTS = Decimal("0.01")


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z: 2025-07-20T03:30:00.000Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def money(amount: Decimal) -> str:
    return str(Decimal(amount).quantize(CENTS))


def _written(serialize, **schema) -> tuple:
    """A value written as a JSON string by `serialize` and documented as `schema`."""
    return PlainSerializer(serialize, return_type=str), WithJsonSchema({"type": "string", **schema})


def _documented(**schema) -> WithJsonSchema:
    """A string documented as `schema`: the pattern is the document's; ids from our rows are not checked again."""
    return WithJsonSchema({"type": "string", **schema})


Uuid = Annotated[str, _documented(pattern=UUID_PATTERN, examples=["0b7c2c1e-5d3a-4f5e-9a1b-2c3d4e5f6a7b"])]
TransactionId = Annotated[str, _documented(pattern=TRANSACTION_ID_PATTERN, examples=["TXN4F7K2M9Q1Z8B"])]
Timestamp = Annotated[datetime, *_written(iso, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                                          description="ISO 8601 UTC with milliseconds",
                                          examples=["2025-07-20T03:30:00.000Z"])]
Money = Annotated[Decimal, *_written(money, pattern=r"^\d+\.\d{2}$", description="Decimal string, two places",
                                     examples=["5000.00"])]
DateText = Annotated[date, *_written(date.isoformat, pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["2030-07-20"])]
TimeText = Annotated[time, *_written(lambda t: t.strftime("%H:%M"), pattern=r"^\d{2}:\d{2}$", examples=["10:30"])]
WholeMinutes = Annotated[int, Field(ge=0)]


class AnswerMismatch(RuntimeError):
    """An answer that does not fit its model: our bug, so a 500 (never the 400 that names a client's bad fields)."""


class Response(BaseModel):
    # A constant field (a default) is still sent every time: the document says it is required.
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True,
                              json_schema_serialization_defaults_required=True)

    def __init__(self, /, **fields):
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise AnswerMismatch(str(exc)) from exc

    def body(self) -> dict:
        """The JSON object of the answer."""
        return self.model_dump(mode="json")


# ---- errors --------------------------------------------------------------------------------------

class ErrorBody(BaseModel):
    """The error envelope of every error answer; some errors add fields of their own."""

    model_config = ConfigDict(extra="allow", strict=True)

    error: str = Field(description="Short text, such as \"Not found\".")
    detail: str = Field(description="One sentence saying what went wrong.")
    reason: str | SkipJsonSchema[None] = Field(None, description="A code, on every 409 and 429, on some 400s and "
                                                                 "on the 401 of an expired token.")
    fields: dict[str, str] | SkipJsonSchema[None] = Field(
        None, description="Each invalid request field (or header, or `body`) and what is wrong with it.")


# Every `reason` a 409 answers with, besides DELETE's `pending_payment_wait` (DeletionBlocked); docs/API.md lists
# the same codes, and tests/integration/test_api_docs.py holds the two to each other.
ConflictReason = Literal["cart_not_active", "cart_locked_by_payment", "cart_empty", "booking_slot_missing",
                         "payment_not_pending", "payment_not_open", "idempotency_key_reused",
                         "idempotency_key_in_progress", "email_taken", "cart_converted", "state_conflict",
                         "amount_too_large", "refund_not_failed"]


class BearerRefused(ErrorBody):
    """A 401 of an endpoint that needs a token: none sent, or one unknown or logged out, or one past its expiry."""

    reason: Literal["token_expired"] | SkipJsonSchema[None] = Field(
        None, description="`token_expired` when the token is past its `expires_at` (log in again); absent otherwise.")


class ConflictBody(ErrorBody):
    """A 409: the current state refuses the request; `reason` says why."""

    reason: ConflictReason


class TooManyFailedLogins(ErrorBody):
    """A 429 from POST /api/auth/token: too many failed logins; `Retry-After` says when to try again."""

    reason: Literal["too_many_failed_logins"]


class GatewayErrorBody(Response):
    """A 502: the gateway could not create the order; the payment stays INITIATED and will time out."""

    error: Literal["Bad Gateway"]
    detail: str
    transaction_id: TransactionId


# ---- auth and catalogue --------------------------------------------------------------------------

class Registered(Response):
    user_id: Uuid
    email: str
    token: str
    expires_at: Timestamp = Field(description="When the token stops working: TOKEN_TTL_MINUTES after it was issued.")


class Token(Response):
    token: str
    expires_at: Timestamp = Field(description="When the token stops working: TOKEN_TTL_MINUTES after it was issued.")


class ServiceOut(Response):
    service_id: Uuid
    name: str
    price: Money
    duration_minutes: int

    @classmethod
    def of(cls, service: Service) -> Self:
        return cls(service_id=service.id, name=service.name, price=service.price,
                   duration_minutes=service.duration_minutes)


# ---- carts, payments, bookings -------------------------------------------------------------------

class ItemOut(Response):
    # Validated straight from persistence's ItemView (the same names) inside a cart's or a booking's validation.
    model_config = ConfigDict(from_attributes=True)

    item_id: Uuid
    service_id: Uuid
    name: str
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
    unit_price: Money
    line_total: Money


class CartOut(Response):
    cart_id: Uuid
    status: CartStatus
    items: list[ItemOut]
    total: Money
    selected_date: DateText | None
    selected_time: TimeText | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, view: CartView) -> Self:
        cart = view.cart
        return cls(cart_id=cart.id, status=cart.status, items=view.items, total=view.total,
                   selected_date=cart.selected_date, selected_time=cart.selected_time, created_at=cart.created_at,
                   updated_at=cart.updated_at)


class PaymentOut(Response):
    transaction_id: TransactionId
    cart_id: Uuid
    status: PaymentStatus
    amount: Money
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    provider_order_id: str | None
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    booking_id: Uuid | None

    @classmethod
    def of(cls, view: PaymentView, timeout_minutes: float) -> Self:
        payment = view.payment
        return cls(transaction_id=payment.transaction_id, cart_id=payment.cart_id, status=payment.status,
                   amount=payment.amount, currency=payment.currency, provider_order_id=payment.provider_order_id,
                   created_at=payment.created_at, updated_at=payment.updated_at,
                   expires_at=expiry_of(payment.created_at, timeout_minutes), booking_id=view.booking_id)


class BookingOut(Response):
    booking_id: Uuid
    cart_id: Uuid
    transaction_id: TransactionId
    status: Literal[BookingStatus.CONFIRMED.value]
    selected_date: DateText
    selected_time: TimeText
    items: list[ItemOut]
    total: Money
    created_at: Timestamp

    @classmethod
    def of(cls, view: BookingView) -> Self:
        booking = view.booking
        return cls(booking_id=booking.id, cart_id=booking.cart_id, transaction_id=booking.transaction_id,
                   status=booking.status, selected_date=booking.selected_date,
                   selected_time=booking.selected_time, items=view.items, total=view.total,
                   created_at=booking.created_at)


class HistoryEntry(Response):
    """One recorded trigger; `accepted: false` is a refused capture kept for the refund."""

    model_config = ConfigDict(validate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    trigger: str
    actor: str
    at: Timestamp
    accepted: bool

    @classmethod
    def of(cls, record: TransitionRecord) -> Self:
        return cls(from_=record.from_state, to=record.to_state, trigger=record.trigger, actor=record.actor,
                   at=record.at, accepted=record.accepted)


class Confirmed(Response):
    payment: PaymentOut
    booking: BookingOut
    cart: CartOut

    @classmethod
    def of(cls, captured: Captured, timeout_minutes: float) -> Self:
        return cls(payment=PaymentOut.of(captured.payment, timeout_minutes), booking=BookingOut.of(captured.booking),
                   cart=CartOut.of(captured.cart))


class RefundOut(Response):
    """Money the gateway captured that bought no booking, on its way back to the customer."""

    refund_id: Uuid
    transaction_id: TransactionId
    provider_payment_id: str
    amount: Money
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    status: RefundStatus
    attempts: Annotated[int, Field(ge=0, description="Attempts to send it since it was requested or retried.")]
    provider_refund_id: str | None
    last_error: str | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, refund: Refund) -> Self:
        return cls(refund_id=refund.id, transaction_id=refund.transaction_id,
                   provider_payment_id=refund.provider_payment_id, amount=refund.amount, currency=refund.currency,
                   status=refund.status, attempts=refund.attempts, provider_refund_id=refund.provider_refund_id,
                   last_error=refund.last_error, created_at=refund.created_at, updated_at=refund.updated_at)


class WebhookAck(Response):
    event_id: str
    outcome: Literal["captured", "already_captured", "refused", "failed", "ignored", "unknown_order", "succeeded",
                     "unknown_refund", "duplicate"]


# ---- cart deletion (seed 001) --------------------------------------------------------------------

DeletionReason = Literal["no_payments", "no_pending_payments", "stale_pending_payments", "pending_payment_wait",
                         "cart_converted", "cart_deleted"]


def _absent_when_none():
    """A field written only when it has a value (the wait of a deletion that must wait)."""
    return Field(None, exclude_if=lambda value: value is None)


class DeletionInfo(Response):
    # Validated straight from persistence's DeletionInfo (the same names); the wait is sent only if there is one.
    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=False)

    can_delete: bool
    reason: DeletionReason
    message: str
    wait_time_minutes: WholeMinutes | SkipJsonSchema[None] = _absent_when_none()
    retry_after: Timestamp | SkipJsonSchema[None] = _absent_when_none()
    payment_count: WholeMinutes | SkipJsonSchema[None] = _absent_when_none()
    latest_payment_age_minutes: WholeMinutes | SkipJsonSchema[None] = _absent_when_none()


class PaymentSummary(Response):
    transaction_id: TransactionId
    status: PaymentStatus
    amount: Money
    created_at: Timestamp
    age_minutes: WholeMinutes
    has_booking: bool

    @classmethod
    def of(cls, aged: PaymentAge) -> Self:
        payment = aged.payment
        return cls(transaction_id=payment.transaction_id, status=payment.status, amount=payment.amount,
                   created_at=payment.created_at, age_minutes=aged.age_minutes, has_booking=aged.has_booking)


class DeletionStatus(Response):
    can_delete: bool
    cart_status: CartStatus
    payments_count: WholeMinutes
    payments: list[PaymentSummary]
    deletion_info: DeletionInfo

    @classmethod
    def of(cls, status: DeletionState) -> Self:
        return cls(can_delete=status.info.can_delete, cart_status=status.cart.status,
                   payments_count=len(status.payments), payments=[PaymentSummary.of(a) for a in status.payments],
                   deletion_info=status.info)


class AutoCleanup(Response):
    cleaned_up: Literal[True]
    payments_cancelled: Annotated[int, Field(ge=1)]
    message: str

    @classmethod
    def of(cls, cancelled: int, timeout_minutes: float) -> Self | None:
        """What the automatic clean-up did, or None when it cancelled nothing."""
        if not cancelled:
            return None
        return cls(cleaned_up=True, payments_cancelled=cancelled,
                   message=auto_cleanup_message(cancelled, timeout_minutes))


class CartDeleted(Response):
    message: Literal["Cart deleted successfully"] = "Cart deleted successfully"
    deleted_cart_id: Uuid
    auto_cleanup: AutoCleanup | None


BLOCKED = "Cannot delete cart with recent pending payments"


class DeletionBlocked(Response):
    """409 from DELETE while fresh open payments remain (with a Retry-After header)."""

    error: Literal[BLOCKED] = BLOCKED
    detail: str
    can_delete: Literal[False] = False
    reason: Literal["pending_payment_wait"]
    wait_time_minutes: WholeMinutes
    retry_after: Timestamp
    payment_count: Annotated[int, Field(ge=1)]
    latest_payment_age_minutes: WholeMinutes
    auto_cleanup: AutoCleanup | None

    @classmethod
    def of(cls, info: Deletability, auto_cleanup: AutoCleanup | None) -> Self:
        return cls(detail=info.message, reason=info.reason, wait_time_minutes=info.wait_time_minutes,
                   retry_after=info.retry_after, payment_count=info.payment_count,
                   latest_payment_age_minutes=info.latest_payment_age_minutes, auto_cleanup=auto_cleanup)


class CleanupResult(Response):
    cleanup_performed: bool
    payments_cancelled: WholeMinutes
    message: str
    can_delete_now: bool
    deletion_info: DeletionInfo


# ---- operations ----------------------------------------------------------------------------------

class Health(Response):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"
    scheduler: str = Field(description="running, stopped, or disabled (SCHEDULER_ENABLED=false).")


class Unhealthy(Response):
    """503 from /healthz: the database cannot be reached."""

    status: Literal["unavailable"] = "unavailable"
    database: Literal["unreachable"] = "unreachable"
    scheduler: str
    error: str = "Service Unavailable"
    detail: str = "The database cannot be reached."


# ---- the bodies the views answer with ------------------------------------------------------------

def service_json(service: Service) -> dict:
    return ServiceOut.of(service).body()


def cart_json(view: CartView) -> dict:
    return CartOut.of(view).body()


def payment_json(view: PaymentView, timeout_minutes: float) -> dict:
    return PaymentOut.of(view, timeout_minutes).body()


def booking_json(view: BookingView) -> dict:
    return BookingOut.of(view).body()


def history_json(records: list[TransitionRecord]) -> list[dict]:
    return [HistoryEntry.of(r).body() for r in records]


def refund_json(refund: Refund) -> dict:
    return RefundOut.of(refund).body()
