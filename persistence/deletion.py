"""Cart deletion with a grace period (seed 001): deletion_status, DELETE and cleanup_old_payments.

The rules (stale, wait, messages, reasons) are machines/deletion_policy.py;
this module reads and writes the rows they are applied to. DELETE and
cleanup are one unit of work each, under the cart row lock: a concurrent
capture either converted the cart before it began or waits and then finds
it DELETED (or its payment timed out); never both.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from machines import CartStatus, is_open
from machines.deletion_policy import DeletionInfo, age_minutes, deletion_info, is_stale
from persistence import locks
from persistence.db import db
from persistence.errors import Conflict, NotFound
from persistence.models import Booking, Cart, Payment
from persistence.sweep import StalePayment, SweepResult
from persistence.uow import UnitOfWork, unit_of_work
from persistence.writer import CART, PAYMENT, transition


@dataclass(frozen=True)
class PaymentAge:
    payment: Payment
    age_minutes: int
    has_booking: bool


@dataclass(frozen=True)
class DeletionStatus:
    cart: Cart
    payments: list[PaymentAge]  # newest first
    info: DeletionInfo


class DeletionBlocked(Exception):
    """Fresh open payments remain: the customer must wait (409 with Retry-After)."""

    def __init__(self, info: DeletionInfo, cleanup: SweepResult):
        super().__init__(info.message)
        self.info = info
        self.cleanup = cleanup


def payments_of(cart_id: str) -> list[Payment]:
    """All of a cart's payments, newest first."""
    return list(db.session.scalars(select(Payment).where(Payment.cart_id == cart_id)
                                   .order_by(Payment.created_at.desc(), Payment.transaction_id)))


def info_of(cart: Cart, payments: list[Payment], *, now: datetime, timeout_minutes: float) -> DeletionInfo:
    return deletion_info(cart.status, payments, now=now, timeout_minutes=timeout_minutes)


# deletion_status in one statement: the caller's cart (no row for anyone else's), each of its payments
# newest first, and whether that payment bought the booking. Built once with bound values, so SQLAlchemy
# keeps its compiled form: a customer told to wait polls this.
_CART_PAYMENTS_AND_BOOKING = (
    select(Cart, Payment, Booking.id.is_not(None).label("booked"))
    .outerjoin(Payment, Payment.cart_id == Cart.id)
    .outerjoin(Booking, Booking.transaction_id == Payment.transaction_id)
    .where(Cart.id == bindparam("cart_id"), Cart.user_id == bindparam("user_id"))
    .order_by(Payment.created_at.desc(), Payment.transaction_id))


def status(user_id: str, cart_id: str, *, now: datetime, timeout_minutes: float) -> DeletionStatus:
    """deletion_status: read only, one statement; NotFound for a cart that is not the caller's."""
    rows = db.session.execute(_CART_PAYMENTS_AND_BOOKING, {"cart_id": cart_id, "user_id": user_id}).all()
    if not rows:
        raise NotFound("cart")
    cart = rows[0].Cart
    paid = [row for row in rows if row.Payment is not None]  # a cart without payments is one row of NULLs
    ages = [PaymentAge(row.Payment, age_minutes(row.Payment.created_at, now), row.booked) for row in paid]
    return DeletionStatus(cart, ages, info_of(cart, [row.Payment for row in paid], now=now,
                                              timeout_minutes=timeout_minutes))


def _time_out_stale(uow: UnitOfWork, payments: list[Payment], *, now: datetime, timeout_minutes: float,
                    actor: str) -> SweepResult:
    """The sweep of one locked cart: `timeout` on each of its (locked) stale open payments."""
    result = SweepResult(batches=1)
    for payment in payments:
        if is_open(payment.status) and is_stale(payment.created_at, now, timeout_minutes):
            transition(uow.session, PAYMENT, payment.transaction_id, "timeout", observed=payment.status, actor=actor,
                       now=now, loaded=payment)
            result.cancelled.append(StalePayment(payment.transaction_id, payment.cart_id, payment.created_at))
    return result


def cleanup(user_id: str, cart_id: str, *, now: datetime, timeout_minutes: float,
            actor: str) -> tuple[SweepResult, DeletionStatus]:
    """cleanup_old_payments: cancel the cart's stale open payments, then say where deletion stands."""
    with unit_of_work() as uow:
        cart = locks.lock_cart(user_id, cart_id)
        swept = _time_out_stale(uow, locks.lock_payments_of_cart(cart.id), now=now,
                                timeout_minutes=timeout_minutes, actor=actor)
        uow.commit()
    return swept, status(user_id, cart_id, now=now, timeout_minutes=timeout_minutes)


def delete(user_id: str, cart_id: str, *, now: datetime, timeout_minutes: float, actor: str) -> SweepResult:
    """DELETE: cancel stale payments, then move the cart to DELETED unless fresh ones remain."""
    with unit_of_work() as uow:
        cart = locks.lock_cart(user_id, cart_id)
        if cart.status == CartStatus.CONVERTED:
            booking_id = uow.session.scalar(select(Booking.id).where(Booking.cart_id == cart.id))
            converted = info_of(cart, [], now=now, timeout_minutes=timeout_minutes)
            raise Conflict(converted.reason, converted.message, error="Cannot delete a converted cart",
                           booking_id=booking_id)
        if cart.status != CartStatus.ACTIVE:
            raise Conflict("cart_not_active", f"The cart is already {cart.status}.")
        payments = locks.lock_payments_of_cart(cart.id)
        swept = _time_out_stale(uow, payments, now=now, timeout_minutes=timeout_minutes, actor=actor)
        info = info_of(cart, payments, now=now, timeout_minutes=timeout_minutes)
        if not info.can_delete:
            uow.commit()  # the auto-cancelled stale payments stay cancelled
            raise DeletionBlocked(info, swept)
        transition(uow.session, CART, cart.id, "delete", observed=cart.status, actor=actor, now=now,
                   facts={"fresh_open_payments": info.payment_count or 0}, loaded=cart)
        uow.commit()
    return swept
