"""The tables. Statuses are only ever written by `persistence.writer`."""

from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Time,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from machines import OPEN_PAYMENT_STATES, CartStatus, PaymentStatus, RefundStatus
from machines.limits import MAX_QUANTITY
from persistence.db import db
from persistence.types import UTCDateTime

UUID_LEN = 36
Money = Numeric(12, 2, asdecimal=True)
# SQLite only autoincrements an INTEGER PRIMARY KEY.
HistoryId = BigInteger().with_variant(Integer, "sqlite")


def open_payments_only():
    """The predicate of the partial (status, created_at) index: only open payments are in it."""
    return text("status IN ({})".format(", ".join(f"'{state.value}'" for state in OPEN_PAYMENT_STATES)))


def _status_check(enum_type) -> CheckConstraint:
    allowed = ", ".join(f"'{member.value}'" for member in enum_type)
    return CheckConstraint(f"status IN ({allowed})", name="status_valid")


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(db.Model):
    """A bearer token; only its SHA-256 is stored.

    It works until `expires_at` (machines/token_lifetime.py); a logout sets `revoked_at` and
    keeps the row, like every other row here.
    """

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Service(db.Model):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Money)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Cart(db.Model):
    __tablename__ = "carts"
    __table_args__ = (
        _status_check(CartStatus),
        Index("ix_carts_user_id_status", "user_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))
    selected_date: Mapped[date | None] = mapped_column(Date)
    selected_time: Mapped[time | None] = mapped_column(Time)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def live_items_only():
    """The predicate of the partial unique (cart_id, service_id) index: removed lines are kept, not in it."""
    return text("removed_at IS NULL")


class CartItem(db.Model):
    __tablename__ = "cart_items"
    __table_args__ = (
        # One live line per service; a removed line stays as a record (rows are never hard-deleted).
        Index("uq_cart_items_live_service", "cart_id", "service_id", unique=True,
              postgresql_where=live_items_only(), sqlite_where=live_items_only()),
        CheckConstraint(f"quantity BETWEEN 1 AND {MAX_QUANTITY}", name="quantity_in_range"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"), index=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    # Copied at add time: later price changes do not touch a filled cart.
    unit_price: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the customer removes the line; a removed line is in no cart view, total or booking.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# What every read of cart lines selects: the lines not removed (the ORM form of `live_items_only`).
LIVE_ITEMS = CartItem.removed_at.is_(None)


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        _status_check(PaymentStatus),
        # The sweep's query: open payments by age. Partial, so a payment leaves it when it closes: the
        # index stays as small as the open payments, the sweep never walks past closed ones, and
        # closing a payment (a sweep cancels thousands) adds no entry to it.
        Index("ix_payments_status_created_at", "status", "created_at", postgresql_where=open_payments_only(),
              sqlite_where=open_payments_only()),
        Index("ix_payments_cart_id_status", "cart_id", "status"),
    )

    transaction_id: Mapped[str] = mapped_column(String(15), primary_key=True)
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"))
    # Not indexed: payments are only ever found by their id (with the owner checked), their cart or
    # their order, and every index costs each payment write (a sweep writes thousands a second).
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    provider_order_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_payment_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Booking(db.Model):
    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    # One booking per cart and one per payment, whatever the code does.
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"), unique=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("payments.transaction_id"), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    selected_date: Mapped[date] = mapped_column(Date)
    selected_time: Mapped[time] = mapped_column(Time)
    total: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(db.Model):
    """Money the gateway captured that bought no booking: one per provider payment, whatever the paths it came by."""

    __tablename__ = "refunds"
    __table_args__ = (
        _status_check(RefundStatus),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The refund job's query: due refunds by when they are due.
        Index("ix_refunds_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("payments.transaction_id"), index=True)
    # Exactly one refund per captured provider payment, whatever the code does.
    provider_payment_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    # Admin retries so far: each is sent under a gateway key of its own (persistence/refunds.py gateway_key).
    retries: Mapped[int] = mapped_column(Integer, server_default="0")
    provider_refund_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TransitionRecord(db.Model):
    """One row per transition, accepted or refused; never updated, never deleted."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_entity_entity_id", "entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(HistoryId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(UUID_LEN))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted: Mapped[bool] = mapped_column(Boolean)
    # What a refund needs for a refused capture (provider ids), and similar context.
    detail: Mapped[dict | None] = mapped_column(JSON)


class IdempotencyKey(db.Model):
    """A payment-creation request seen under a key, per user, and the answer it got."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(ForeignKey("payments.transaction_id"))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookEvent(db.Model):
    """A gateway event, recorded once by its id whatever its outcome."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    provider_order_id: Mapped[str] = mapped_column(String(64))
    provider_payment_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailure(db.Model):
    """A failed login, counted per email and per client address to slow down guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(HistoryId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))  # "email:<address>" or "addr:<ip>"
    at: Mapped[datetime] = mapped_column(UTCDateTime)
