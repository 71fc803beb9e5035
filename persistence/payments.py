"""Payments: starting one, capturing one into a booking, failing and cancelling.

Each function that writes is one unit of work that locks the payment's cart
first, then the cart's payments (persistence/locks.py). Holding those locks,
what it reads is what the rows hold until it commits, so a capture decides
once: it either succeeds the payment, converts the cart, supersedes every
other open payment of the cart and books — or it refuses and records the
refusal, because a customer charged for a payment we no longer take must
never be forgotten.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from machines import BookingStatus, CartStatus, InvalidTransition, PaymentStatus, is_open
from machines.ids import new_transaction_id, new_uuid
from machines.limits import too_large
from persistence import carts, locks, refunds
from persistence.bookings import BookingView, booking_for_payment
from persistence.db import db
from persistence.errors import Conflict, InvalidSignature, NotFound
from persistence.idempotency import claim_key
from persistence.models import Booking, Cart, Payment
from persistence.uow import UnitOfWork, unit_of_work
from persistence.writer import CART, PAYMENT, TransitionConflict, record_refusal, transition

log = structlog.get_logger()

@dataclass(frozen=True)
class PaymentView:
    payment: Payment
    booking_id: str | None


@dataclass(frozen=True)
class Captured:
    payment: PaymentView
    booking: BookingView
    cart: carts.CartView
    replayed: bool


class DuplicateEvent(Exception):
    """A gateway event id that was already recorded."""


class EventClaim(Protocol):
    """Records a webhook event in whichever unit of work settles it, exactly once."""

    def take(self) -> bool:
        """Inside the unit, after its locks: False if the event was already recorded."""

    def settle(self, outcome: str) -> None:
        """Inside the same unit, last: record what the event did."""


def find_payment(owner_id: str, transaction_id: str) -> Payment:
    payment = db.session.scalar(locks.owned_payment(owner_id, transaction_id))
    if payment is None:
        raise NotFound("payment")
    return payment


def get_payment(owner_id: str, transaction_id: str) -> PaymentView:
    return with_booking(find_payment(owner_id, transaction_id))


def with_booking(payment: Payment) -> PaymentView:
    booking_id = db.session.scalar(select(Booking.id).where(Booking.transaction_id == payment.transaction_id))
    return PaymentView(payment, booking_id)


def begin_payment(user_id: str, cart_id: str, *, currency: str, now: datetime, actor: str,
                  idempotency: tuple[str, str] | None = None) -> Payment:
    """Record a payment INITIATED for the caller's cart, claiming the idempotency key with it.

    An expired key is taken over (persistence/idempotency.py). Raises
    IntegrityError (rolled back) when another request holds the key.
    """
    with unit_of_work() as uow:
        cart = locks.lock_cart(user_id, cart_id)
        if cart.status != CartStatus.ACTIVE:
            raise Conflict("cart_not_active", f"The cart is {cart.status}; only an ACTIVE cart can be paid for.")
        count, total = carts.cart_total(cart_id)
        if count == 0:
            raise Conflict("cart_empty", "The cart has no items to pay for.")
        if cart.selected_date is None or cart.selected_time is None:
            raise Conflict("booking_slot_missing", "Choose selected_date and selected_time before paying.")
        if too_large(total):
            raise carts.amount_too_large()
        payment = Payment(transaction_id=new_transaction_id(), cart_id=cart_id, user_id=user_id,
                          status=PAYMENT.machine.initial.value, amount=total, currency=currency,
                          created_at=now, updated_at=now)
        uow.session.add(payment)
        if idempotency is not None:
            uow.session.flush()  # the key row refers to the payment: insert the payment first
            key, request_hash = idempotency
            claim_key(user_id, key, request_hash, payment.transaction_id, now=now)
        uow.commit()
    log.info("payment.created", transaction_id=payment.transaction_id, cart_id=cart_id, actor=actor)
    return payment


def submit_payment(payment: Payment, provider_order_id: str, *, actor: str, now: datetime) -> PaymentView:
    """The gateway order exists: INITIATED -> PENDING."""
    with unit_of_work() as uow:
        cart = locks.lock_cart_of_payment(payment.transaction_id)
        current = locks.lock_payment(payment.transaction_id)
        try:
            transition(uow.session, PAYMENT, current.transaction_id, "submit", observed=current.status, actor=actor,
                       now=now, values={"provider_order_id": provider_order_id}, loaded=current)
        except InvalidTransition:
            # Closed while the gateway made its order: superseded by a capture of a sibling, timed
            # out, or cancelled by its owner.
            if cart.status != CartStatus.ACTIVE:
                raise Conflict("cart_not_active", f"The cart is {cart.status}: another payment of it was captured "
                                                  "while this one started, and this one was cancelled.") from None
            raise Conflict("payment_not_open", f"The payment is {current.status}: it was closed while the gateway "
                                               "created its order.", status=current.status) from None
        uow.commit()
    return PaymentView(current, None)


def confirm(owner_id: str, transaction_id: str, provider_payment_id: str, signature: str, *,
            verify: Callable[[str, str, str], bool], actor: str, now: datetime) -> Captured:
    """The customer's return from the gateway: verify the signature, then capture."""
    with unit_of_work() as uow:
        cart = locks.lock_cart_of_payment(transaction_id, user_id=owner_id)
        payments = locks.lock_payments_of_cart(cart.id)
        payment = next(p for p in payments if p.transaction_id == transaction_id)
        if not payment.provider_order_id or not verify(payment.provider_order_id, provider_payment_id, signature):
            raise InvalidSignature()  # nothing was written: leaving the unit rolls back
        return _capture(uow, cart, payments, payment, provider_payment_id, actor=actor, now=now)


def capture_of_order(provider_order_id: str, provider_payment_id: str, *, actor: str, now: datetime,
                     claim: EventClaim) -> str:
    """A signed gateway capture: the same capture as a confirm; returns the event's outcome."""
    with unit_of_work() as uow:
        if (locked := _lock_order(uow, provider_order_id, claim)) is None:
            return "unknown_order"
        cart, payments, payment = locked
        try:
            captured = _capture(uow, cart, payments, payment, provider_payment_id, actor=actor, now=now, claim=claim)
        except Conflict:
            return "refused"
        return "already_captured" if captured.replayed else "captured"


def fail_of_order(provider_order_id: str, *, actor: str, now: datetime, claim: EventClaim) -> str:
    """The gateway says the payment failed; a closed payment is left as it is."""
    with unit_of_work() as uow:
        if (locked := _lock_order(uow, provider_order_id, claim)) is None:
            return "unknown_order"
        _, _, payment = locked
        try:
            transition(uow.session, PAYMENT, payment.transaction_id, "fail", observed=payment.status, actor=actor,
                       now=now, loaded=payment)
            outcome = "failed"
        except InvalidTransition:
            outcome = "ignored"
        claim.settle(outcome)
        uow.commit()
        return outcome


def capture_found_by_reconciliation(provider_order_id: str, provider_payment_id: str, *, actor: str,
                                    now: datetime) -> str:
    """A capture the gateway lists for one of our orders: the late-capture path, unless it is known.

    Returns `own_success` (it bought this payment's booking), `already_refunded`
    (a refund of it is requested already), `refund_requested` (refused and
    recorded now, its refund requested) or `captured` (the payment was still
    PENDING: the capture succeeded it, as a confirm would).
    """
    with unit_of_work() as uow:
        cart = locks.lock_cart_of_order(provider_order_id)
        payments = locks.lock_payments_of_cart(cart.id)
        payment = next(p for p in payments if p.provider_order_id == provider_order_id)
        # Decided under the cart lock, where every other capture path decides: two reconciliations
        # at once, or one beside a webhook, request one refund.
        if payment.status == PaymentStatus.SUCCESS and payment.provider_payment_id == provider_payment_id:
            return "own_success"
        if refunds.is_requested(provider_payment_id):
            return "already_refunded"
        try:
            _capture(uow, cart, payments, payment, provider_payment_id, actor=actor, now=now)
        except Conflict:
            return "refund_requested"
        return "captured"


def orders_settled_since(since: datetime) -> list[tuple[str, str, str, str | None]]:
    """(transaction_id, provider_order_id, status, provider_payment_id) of each payment with a gateway
    order that became SUCCESS, CANCELLED or FAILED at or after `since`, oldest first.

    All three are final states, so `updated_at` is when. A SUCCESS payment's order is asked about
    too: a second capture on a paid order (the customer paid twice, and only one reached us) bought
    nothing and must be refunded like any late capture.
    """
    settled = [PaymentStatus.SUCCESS.value, PaymentStatus.CANCELLED.value, PaymentStatus.FAILED.value]
    rows = db.session.execute(
        select(Payment.transaction_id, Payment.provider_order_id, Payment.status, Payment.provider_payment_id)
        .where(Payment.status.in_(settled), Payment.updated_at >= since, Payment.provider_order_id.is_not(None))
        .order_by(Payment.updated_at, Payment.transaction_id))
    settled_orders = [tuple(row) for row in rows]
    db.session.rollback()  # end the read: the caller asks the gateway about each order next
    return settled_orders


def _capture(uow: UnitOfWork, cart: Cart, payments: list[Payment], payment: Payment, provider_payment_id: str, *,
             actor: str, now: datetime, claim: EventClaim | None = None) -> Captured:
    """Succeed `payment`, convert its cart, supersede its open siblings and book; or refuse and record.

    The cart and all its payments are locked by the caller: nothing read here can change before commit.
    """
    if payment.status == PaymentStatus.SUCCESS and payment.provider_payment_id == provider_payment_id:
        return _replay(uow, cart, payment, claim)
    if payment.status != PaymentStatus.PENDING or cart.status != CartStatus.ACTIVE:
        _refuse(uow, cart, payment, provider_payment_id, actor=actor, now=now, claim=claim)
    transition(uow.session, CART, cart.id, "convert", observed=cart.status, actor=actor, now=now, loaded=cart)
    transition(uow.session, PAYMENT, payment.transaction_id, "succeed", observed=payment.status, actor=actor,
               now=now, facts={"verified": True}, values={"provider_payment_id": provider_payment_id},
               loaded=payment)
    for sibling in payments:
        if sibling is not payment and is_open(sibling.status):
            transition(uow.session, PAYMENT, sibling.transaction_id, "supersede", observed=sibling.status,
                       actor=actor, now=now, loaded=sibling)
    booking = Booking(id=new_uuid(), cart_id=cart.id, transaction_id=payment.transaction_id,
                      user_id=payment.user_id, status=BookingStatus.CONFIRMED.value,
                      selected_date=cart.selected_date, selected_time=cart.selected_time, total=payment.amount,
                      created_at=now)
    try:
        # Written as a plain INSERT of its columns: the object only carries the answer.
        uow.session.execute(insert(Booking.__table__).values(**_columns(booking)))
    except IntegrityError:
        # One booking per cart and per payment is the schema's own guarantee too: if it ever
        # fires, the code above is wrong, and none of this capture is kept.
        raise TransitionConflict(CART.name, booking.cart_id, "convert") from None
    items = carts.items_of([cart.id])[cart.id]
    if claim is not None:
        claim.settle("captured")
    uow.commit()
    log.info("cart.converted", cart_id=cart.id, booking_id=booking.id, transaction_id=payment.transaction_id,
             actor=actor)
    return Captured(PaymentView(payment, booking.id), BookingView(booking, items), carts.CartView(cart, items),
                    replayed=False)


def _columns(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _replay(uow: UnitOfWork, cart: Cart, payment: Payment, claim: EventClaim | None) -> Captured:
    booking = booking_for_payment(payment.transaction_id)
    if claim is not None:
        claim.settle("already_captured")
        uow.commit()
    return Captured(PaymentView(payment, booking.booking.id), booking, carts.CartView(cart, booking.items),
                    replayed=True)


def _refuse(uow: UnitOfWork, cart: Cart, payment: Payment, provider_payment_id: str, *, actor: str, now: datetime,
            claim: EventClaim | None) -> None:
    """Record a capture we no longer take and request its refund, commit both, and raise the 409."""
    record_refusal(uow.session, PAYMENT, payment.transaction_id, "succeed", from_state=payment.status,
                   to_state=PaymentStatus.SUCCESS.value, actor=actor, now=now,
                   detail={"provider_order_id": payment.provider_order_id,
                           "provider_payment_id": provider_payment_id,
                           "amount": str(payment.amount), "currency": payment.currency})
    refund = refunds.request_refund(uow, payment, provider_payment_id, now=now)
    if claim is not None:
        claim.settle("refused")
    uow.commit()
    log.warning("payment.late_capture", transaction_id=payment.transaction_id, status=payment.status,
                provider_payment_id=provider_payment_id, amount=str(payment.amount), refund_id=refund.id,
                actor=actor)
    why = (f"The payment is {payment.status}, not PENDING" if payment.status != PaymentStatus.PENDING
           else f"The payment's cart is {cart.status}")
    raise Conflict("payment_not_pending", f"{why}; the capture was refused and recorded.", status=payment.status)


def cancel(owner_id: str, transaction_id: str, *, actor: str, now: datetime) -> PaymentView:
    """The owner gives up on an open payment."""
    with unit_of_work() as uow:
        locks.lock_cart_of_payment(transaction_id, user_id=owner_id)
        payment = locks.lock_payment(transaction_id)
        try:
            transition(uow.session, PAYMENT, transaction_id, "cancel", observed=payment.status, actor=actor,
                       now=now, loaded=payment)
        except InvalidTransition:
            raise Conflict("payment_not_open", f"The payment is {payment.status}; only an open payment can be "
                                               "cancelled.", status=payment.status) from None
        uow.commit()
    return PaymentView(payment, None)


def _take(claim: EventClaim) -> None:
    if not claim.take():
        raise DuplicateEvent()  # leaving the unit of work rolls back


def _lock_order(uow: UnitOfWork, provider_order_id: str, claim: EventClaim
                ) -> tuple[Cart, list[Payment], Payment] | None:
    """Lock the cart of a gateway order, then its payments, then claim the event (DuplicateEvent if seen).

    For an order we never made, record the event as `unknown_order`, commit, and return None.
    """
    cart = locks.lock_cart_of_order(provider_order_id)
    payments = locks.lock_payments_of_cart(cart.id) if cart is not None else []
    _take(claim)
    if cart is None:
        claim.settle("unknown_order")
        uow.commit()
        return None
    return cart, payments, next(p for p in payments if p.provider_order_id == provider_order_id)
