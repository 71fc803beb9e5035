"""Request bodies, strictly typed (SPEC §2): the validation and the OpenAPI come from here."""

import re
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from machines.ids import UUID_PATTERN, is_uuid
from machines.limits import AMOUNT_INTEGER_DIGITS, MAX_QUANTITY
from persistence.accounts import normalise_email

# Matched with fullmatch (`$` alone would also match before a final newline); the patterns are the OpenAPI ones.
# [0-9], not \d: \d takes every Unicode digit ("٢٥٠٠" would be 2500).
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TIME = re.compile(r"^[0-9]{2}:[0-9]{2}$")
_PRICE = re.compile(rf"^[0-9]{{1,{AMOUNT_INTEGER_DIGITS}}}(\.[0-9]{{1,2}})?$")
MAX_EMAIL_LENGTH = 254


def _uuid(value: str) -> str:
    if not is_uuid(value):
        raise ValueError("must be a UUID in canonical form (36 lower-case characters with hyphens)")
    return value


def _email(value: str) -> str:
    # Checked as stored: lower-casing can lengthen a string ("İ" becomes two code points).
    if len(normalise_email(value)) > MAX_EMAIL_LENGTH:
        raise ValueError(f"must be at most {MAX_EMAIL_LENGTH} characters once lower-cased")
    return value


def _date(value: str) -> date:
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError("must be a date string YYYY-MM-DD")


def _time(value: str) -> time:
    try:
        if _TIME.fullmatch(value):
            return time.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError("must be a time string HH:MM")


def _price(value: str) -> Decimal:
    if not _PRICE.fullmatch(value):
        raise ValueError("must be a decimal string with at most two places, such as \"500.00\"")
    try:
        return Decimal(value).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ValueError("must be a decimal string") from None


# json_schema_extra documents each format in the OpenAPI document without changing validation or its messages.
UuidStr = Annotated[StrictStr, AfterValidator(_uuid), Field(json_schema_extra={
    "format": "uuid", "pattern": UUID_PATTERN})]
DateStr = Annotated[StrictStr, AfterValidator(_date), Field(json_schema_extra={
    "format": "date", "pattern": _DATE.pattern})]
TimeStr = Annotated[StrictStr, AfterValidator(_time), Field(json_schema_extra={"pattern": _TIME.pattern})]
PriceStr = Annotated[StrictStr, AfterValidator(_price), Field(json_schema_extra={"pattern": _PRICE.pattern})]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Credentials(Body):
    email: Annotated[StrictStr, Field(min_length=3, max_length=MAX_EMAIL_LENGTH, pattern=r"^[^@\s]+@[^@\s]+$"),
                     AfterValidator(_email)]
    password: Annotated[StrictStr, Field(max_length=1024)]


class Registration(Credentials):
    password: Annotated[StrictStr, Field(min_length=8, max_length=1024)]


class NewService(Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    price: PriceStr
    duration_minutes: Annotated[StrictInt, Field(ge=1, le=24 * 60)]


class Slot(Body):
    """A booking slot; either part may be null (not chosen yet)."""

    selected_date: DateStr | None = None
    selected_time: TimeStr | None = None


class NewItem(Body):
    service_id: UuidStr
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]


class NewPayment(Body):
    cart_id: UuidStr


class Confirmation(Body):
    provider_payment_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    signature: Annotated[StrictStr, Field(min_length=1, max_length=256)]


class GatewayEvent(BaseModel):
    """A payment's capture or failure, or the outcome of a refund (which also names the gateway's refund id)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    event_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    event: Literal["payment.captured", "payment.failed", "refund.processed", "refund.failed"]
    provider_order_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    provider_payment_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    provider_refund_id: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _refund_events_name_the_refund(self):
        if self.event.startswith("refund.") and self.provider_refund_id is None:
            raise ValueError(f"{self.event} needs provider_refund_id")
        return self


# ---- Razorpay's webhook body (GATEWAY=razorpay) ----------------------------------------------------------------
# Razorpay's own shape, of which only what the service reads is declared; every other field is ignored, as Razorpay
# adds fields without notice. Its event id comes in the X-Razorpay-Event-Id header, not in the body.

ProviderId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
# The events acted on, and the entity each must contain.
_RAZORPAY_EVENT_CONTAINS = {"payment.captured": "payment", "payment.failed": "payment", "refund.processed": "refund",
                            "refund.failed": "refund"}


class RazorpayPayment(BaseModel):
    """A payment as Razorpay's event snapshots it; `order_id` is null for a payment made without an order."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: ProviderId
    order_id: ProviderId | None = None


class RazorpayRefund(BaseModel):
    """A refund as Razorpay's event snapshots it; ours carry our refund_id in `notes` and as `receipt`."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: ProviderId
    payment_id: ProviderId
    # Razorpay writes empty notes as [] rather than {}.
    notes: dict[str, object] | list[object] = Field(default_factory=list)
    receipt: StrictStr | None = None


class RazorpayPaymentWrapper(BaseModel):
    """`payload.payment`: the payment under `entity`."""

    model_config = ConfigDict(extra="ignore", strict=True)

    entity: RazorpayPayment


class RazorpayRefundWrapper(BaseModel):
    """`payload.refund`: the refund under `entity`."""

    model_config = ConfigDict(extra="ignore", strict=True)

    entity: RazorpayRefund


class RazorpayPayload(BaseModel):
    """The entities an event contains, each under `{"entity": ...}`; others (order, dispute...) are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    payment: RazorpayPaymentWrapper | None = None
    refund: RazorpayRefundWrapper | None = None


class RazorpayEvent(BaseModel):
    """Razorpay's webhook event: payment.captured, payment.failed, refund.processed or refund.failed are acted on.

    A payment event needs `payload.payment.entity`, a refund event `payload.refund.entity` (and names the order in
    `payload.payment.entity`, as Razorpay's do). Any other event Razorpay sends (order.paid, payment.authorized,
    refund.created...) is acknowledged with outcome `ignored` and changes nothing.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    entity: Literal["event"]
    event: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    payload: RazorpayPayload

    @model_validator(mode="after")
    def _acted_on_events_contain_their_entity(self):
        needed = _RAZORPAY_EVENT_CONTAINS.get(self.event)
        if needed is not None and getattr(self.payload, needed) is None:
            raise ValueError(f"{self.event} needs payload.{needed}.entity")
        return self


class Empty(Body):
    """Endpoints that take no fields accept `{}` or no body at all."""
