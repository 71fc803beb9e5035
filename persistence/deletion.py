"""Cart deletion with a grace period (seed 001): who may delete a cart, and when.

The newest fresh open payment decides how long to wait. Ages and waits are
floored to whole minutes, `retry_after` is exact, and a payment is stale at
exactly `timeout` minutes old. All arithmetic is on timedeltas, so the
minute boundaries are exact to the microsecond.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, select

from machines import OPEN_PAYMENT_STATES, CartStatus
from persistence import carts
from persistence.db import db
from persistence.errors import Conflict, NotFound
from persistence.direct import DirectStatement
from persistence.models import Booking, Cart, Payment
from persistence.rows import CartRow, PaymentRow
from persistence.sweep import SweepResult, sweep
from persistence.writer import CART, transition

MINUTE = timedelta(minutes=1)
_OPEN = {state.value for state in OPEN_PAYMENT_STATES}


@dataclass(frozen=True)
class DeletionInfo:
    can_delete: bool
    reason: str
    message: str
    wait_time_minutes: int | None = None
    retry_after: datetime | None = None
    payment_count: int | None = None
    latest_payment_age_minutes: int | None = None

    def seconds_to_wait(self, now: datetime) -> int:
        """Whole seconds until `retry_after`, rounded up (the Retry-After header)."""
        remaining = self.retry_after - now
        return -(-remaining // timedelta(seconds=1))


@dataclass(frozen=True)
class PaymentAge:
    payment: PaymentRow
    age_minutes: int
    has_booking: bool


@dataclass(frozen=True)
class DeletionStatus:
    cart: CartRow
    payments: list[PaymentAge]  # newest first
    info: DeletionInfo


class DeletionBlocked(Exception):
    """Fresh open payments remain: the customer must wait (409 with Retry-After)."""

    def __init__(self, info: DeletionInfo, cleanup: SweepResult):
        super().__init__(info.message)
        self.info = info
        self.cleanup = cleanup


def minutes_label(minutes: float) -> str:
    """30 -> "30", 0.5 -> "0.5", 1000000 -> "1000000": as people write a threshold (never 1e+06)."""
    return format(Decimal(str(minutes)).normalize(), "f")


def auto_cleanup_message(cancelled: int, timeout_minutes: float) -> str:
    return f"Auto-cancelled {cancelled} pending payment(s) older than {minutes_label(timeout_minutes)} minutes"


def wait_message(count: int, wait_minutes: int) -> str:
    """The four message forms of SPEC §3, word for word."""
    who = "Cart has pending payment(s)." if count == 1 else f"Cart has {count} pending payment(s)."
    if wait_minutes == 0:
        return f"{who} Please wait less than 1 minute before deletion."
    complete = "the payment" if count == 1 else "the payments"
    return f"{who} Please wait {wait_minutes} more minute(s) before deletion or complete {complete}."


def deletion_info(cart: Cart | CartRow, payments: list[PaymentRow], *, now: datetime,
                  timeout_minutes: float) -> DeletionInfo:
    """Whether `cart` may be deleted now, and if not, why and until when."""
    if cart.status == CartStatus.CONVERTED:
        return DeletionInfo(False, "cart_converted", "Cart has been converted to a booking and cannot be deleted.")
    if cart.status == CartStatus.DELETED:
        return DeletionInfo(False, "cart_deleted", "Cart is already deleted.")
    if not payments:
        return DeletionInfo(True, "no_payments", "Cart has no payments and can be deleted.")
    timeout = timedelta(minutes=timeout_minutes)
    open_payments = [p for p in payments if p.status in _OPEN]
    if not open_payments:
        return DeletionInfo(True, "no_pending_payments", "Cart has no pending payments and can be deleted.")
    fresh = [p for p in open_payments if now - p.created_at < timeout]
    if not fresh:
        return DeletionInfo(True, "stale_pending_payments",
                            f"Cart has {len(open_payments)} pending payment(s) older than "
                            f"{minutes_label(timeout_minutes)} minutes; they will be auto-cancelled on deletion.")
    newest = max(fresh, key=lambda p: p.created_at)
    age = max(now - newest.created_at, timedelta(0))  # a clock behind created_at is age 0, never negative
    wait = (timeout - age) // MINUTE
    return DeletionInfo(False, "pending_payment_wait", wait_message(len(fresh), wait),
                        wait_time_minutes=wait, retry_after=newest.created_at + timeout,
                        payment_count=len(fresh), latest_payment_age_minutes=age // MINUTE)


_PAYMENTS_OF_CART = DirectStatement(
    select(*PaymentRow.columns()).where(Payment.cart_id == bindparam("p_cart"))
    .order_by(Payment.created_at.desc(), Payment.transaction_id))


def payments_of(cart_id: str) -> list[PaymentRow]:
    """All of a cart's payments, newest first."""
    return [PaymentRow.from_values(row) for row in _PAYMENTS_OF_CART.rows(db.session.connection(),
                                                                          {"p_cart": cart_id})]


# The cart, each of its payments (newest first) and whether that payment booked: one query,
# so the answer is read from one snapshot even outside a transaction.
_CART_PAYMENTS_BOOKINGS = DirectStatement(
    select(*CartRow.columns(), *PaymentRow.columns(), Booking.transaction_id.label("booked"))
    .outerjoin(Payment, Payment.cart_id == Cart.id)
    .outerjoin(Booking, Booking.transaction_id == Payment.transaction_id)
    .where(Cart.id == bindparam("p_cart"), Cart.user_id == bindparam("p_user"))
    .order_by(Payment.created_at.desc(), Payment.transaction_id)
)


def status(user_id: str, cart_id: str, *, now: datetime, timeout_minutes: float) -> DeletionStatus:
    """deletion_status: read only."""
    rows = _CART_PAYMENTS_BOOKINGS.rows(db.session.connection(), {"p_cart": cart_id, "p_user": user_id})
    if not rows:
        raise NotFound("cart")
    first_payment = CartRow.width()
    payments = [PaymentRow.from_values(row, first_payment) for row in rows if row[first_payment] is not None]
    booked = {row[-1] for row in rows if row[-1] is not None}
    return _status(CartRow.from_values(rows[0]), payments, booked, now=now, timeout_minutes=timeout_minutes)


def _status(cart: CartRow, payments: list[PaymentRow], booked: set[str], *, now: datetime,
            timeout_minutes: float) -> DeletionStatus:
    ages = [PaymentAge(p, max(now - p.created_at, timedelta(0)) // MINUTE, p.transaction_id in booked)
            for p in payments]
    return DeletionStatus(cart, ages, deletion_info(cart, payments, now=now, timeout_minutes=timeout_minutes))


def booking_of(cart_id: str) -> str | None:
    return db.session.scalar(select(Booking.id).where(Booking.cart_id == cart_id))


def cleanup(user_id: str, cart_id: str, *, now: datetime, timeout_minutes: float,
            actor: str) -> tuple[SweepResult, DeletionStatus]:
    """cleanup_old_payments: cancel the cart's stale open payments, then say where deletion stands."""
    cart = carts.find_cart(user_id, cart_id, for_update=True)
    swept = sweep(now=now, timeout_minutes=timeout_minutes, cart_id=cart.id, actor=actor, commit_batches=False)
    db.session.commit()
    return swept, status(user_id, cart_id, now=now, timeout_minutes=timeout_minutes)


def delete(user_id: str, cart_id: str, *, now: datetime, timeout_minutes: float, actor: str) -> SweepResult:
    """DELETE: cancel stale payments, then move the cart to DELETED unless fresh ones remain.

    One transaction under the cart row lock, so a concurrent capture (which
    locks the cart first too) either converted the cart before this began or
    waits and then finds it DELETED; never both.
    """
    cart = carts.find_cart(user_id, cart_id, for_update=True)
    if cart.status == CartStatus.CONVERTED:
        raise Conflict("cart_converted", "The cart has been converted to a booking and cannot be deleted.",
                       error="Cannot delete a converted cart", booking_id=booking_of(cart.id))
    if cart.status != CartStatus.ACTIVE:
        raise Conflict("cart_not_active", f"The cart is already {cart.status}.")
    swept = sweep(now=now, timeout_minutes=timeout_minutes, cart_id=cart.id, actor=actor, commit_batches=False)
    info = deletion_info(cart, payments_of(cart.id), now=now, timeout_minutes=timeout_minutes)
    if not info.can_delete:
        db.session.commit()  # the auto-cancelled stale payments stay cancelled
        raise DeletionBlocked(info, swept)
    transition(db.session, CART, cart.id, "delete", observed=cart.status, actor=actor, now=now,
               facts={"fresh_open_payments": info.payment_count or 0}, loaded=cart)
    db.session.commit()
    return swept
