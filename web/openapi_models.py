"""Response bodies as pydantic models, for the OpenAPI document and for tests of real responses.

web/serializers.py builds the JSON; these models describe exactly what it
builds (extra fields forbidden, every pattern checked), and tests validate
real responses against them so the two cannot drift apart.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from machines import CartStatus, PaymentStatus

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TXN_PATTERN = r"^TXN[A-Z0-9]{12}$"

Uuid = Annotated[str, Field(pattern=UUID_PATTERN, examples=["0b7c2c1e-5d3a-4f5e-9a1b-2c3d4e5f6a7b"])]
TransactionId = Annotated[str, Field(pattern=TXN_PATTERN, examples=["TXN4F7K2M9Q1Z8B"])]
Timestamp = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                                 description="ISO 8601 UTC with milliseconds", examples=["2025-07-20T03:30:00.000Z"])]
Money = Annotated[str, Field(pattern=r"^\d+\.\d{2}$", description="Decimal string, two places",
                             examples=["5000.00"])]
DateText = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["2030-07-20"])]
TimeText = Annotated[str, Field(pattern=r"^\d{2}:\d{2}$", examples=["10:30"])]
WholeMinutes = Annotated[int, Field(ge=0)]


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---- errors --------------------------------------------------------------------------------------

class ErrorBody(BaseModel):
    """The error envelope of every error answer; some errors add fields of their own."""

    model_config = ConfigDict(extra="allow", strict=True)

    error: str = Field(description="Short text, such as \"Not found\".")
    detail: str = Field(description="One sentence saying what went wrong.")
    reason: str | SkipJsonSchema[None] = Field(None, description="A code, on every 409 and on some 400s.")
    fields: dict[str, str] | SkipJsonSchema[None] = Field(
        None, description="Each invalid request field (or header, or `body`) and what is wrong with it.")


# Every `reason` a 409 answers with, besides DELETE's `pending_payment_wait` (DeletionBlocked); docs/API.md lists
# the same codes, and tests/integration/test_api_docs.py holds the two to each other.
ConflictReason = Literal["cart_not_active", "cart_locked_by_payment", "cart_empty", "booking_slot_missing",
                         "payment_not_pending", "payment_not_open", "idempotency_key_reused",
                         "idempotency_key_in_progress", "email_taken", "cart_converted", "state_conflict"]


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


class Token(Response):
    token: str


class ServiceOut(Response):
    service_id: Uuid
    name: str
    price: Money
    duration_minutes: int


# ---- carts, payments, bookings -------------------------------------------------------------------

class ItemOut(Response):
    item_id: Uuid
    service_id: Uuid
    name: str
    quantity: Annotated[int, Field(ge=1, le=99)]
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


class BookingOut(Response):
    booking_id: Uuid
    cart_id: Uuid
    transaction_id: TransactionId
    status: Literal["CONFIRMED"]
    selected_date: DateText
    selected_time: TimeText
    items: list[ItemOut]
    total: Money
    created_at: Timestamp


class HistoryEntry(Response):
    """One recorded trigger; `accepted: false` is a refused capture kept for the refund."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    trigger: str
    actor: str
    at: Timestamp
    accepted: bool


class Confirmed(Response):
    payment: PaymentOut
    booking: BookingOut
    cart: CartOut


class WebhookAck(Response):
    event_id: str
    outcome: Literal["captured", "already_captured", "refused", "failed", "ignored", "unknown_order", "duplicate"]


# ---- cart deletion (seed 001) --------------------------------------------------------------------

DeletionReason = Literal["no_payments", "no_pending_payments", "stale_pending_payments", "pending_payment_wait",
                         "cart_converted", "cart_deleted"]


class DeletionInfo(Response):
    can_delete: bool
    reason: DeletionReason
    message: str
    wait_time_minutes: WholeMinutes | SkipJsonSchema[None] = None
    retry_after: Timestamp | SkipJsonSchema[None] = None
    payment_count: WholeMinutes | SkipJsonSchema[None] = None
    latest_payment_age_minutes: WholeMinutes | SkipJsonSchema[None] = None


class PaymentSummary(Response):
    transaction_id: TransactionId
    status: PaymentStatus
    amount: Money
    created_at: Timestamp
    age_minutes: Annotated[float, Field(ge=0)]
    has_booking: bool


class DeletionStatus(Response):
    can_delete: bool
    cart_status: CartStatus
    payments_count: WholeMinutes
    payments: list[PaymentSummary]
    deletion_info: DeletionInfo


class AutoCleanup(Response):
    cleaned_up: Literal[True]
    payments_cancelled: Annotated[int, Field(ge=1)]
    message: str


class CartDeleted(Response):
    message: Literal["Cart deleted successfully"]
    deleted_cart_id: Uuid
    auto_cleanup: AutoCleanup | None


class DeletionBlocked(Response):
    """409 from DELETE while fresh open payments remain (with a Retry-After header)."""

    error: Literal["Cannot delete cart with recent pending payments"]
    detail: str
    can_delete: Literal[False]
    reason: Literal["pending_payment_wait"]
    wait_time_minutes: WholeMinutes
    retry_after: Timestamp
    payment_count: Annotated[int, Field(ge=1)]
    latest_payment_age_minutes: WholeMinutes
    auto_cleanup: AutoCleanup | None


class CleanupResult(Response):
    cleanup_performed: bool
    payments_cancelled: WholeMinutes
    message: str
    can_delete_now: bool
    deletion_info: DeletionInfo


# ---- operations ----------------------------------------------------------------------------------

class Health(Response):
    status: Literal["ok"]
    database: Literal["ok"]
    scheduler: str = Field(description="running, stopped, or disabled (SCHEDULER_ENABLED=false).")


class Unhealthy(Response):
    """503 from /healthz: the database cannot be reached."""

    status: Literal["unavailable"]
    database: Literal["unreachable"]
    scheduler: str
    error: str
    detail: str
