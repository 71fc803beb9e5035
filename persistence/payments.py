"""Payments: starting one, capturing one into a booking, failing and cancelling.

A capture is one transaction: convert the cart (its row lock serialises every
capture of that cart), succeed the payment, supersede its open siblings,
insert the booking. If any step finds the state moved on, all of it rolls
back; the payment is re-read and the capture either replays (it already
succeeded with the same provider payment id) or is refused and recorded, so
a customer charged for a payment we no longer take is never forgotten.
"""

import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from machines import CartStatus, InvalidTransition, PaymentStatus
from persistence import carts
from persistence.bookings import BookingView, booking_for_payment
from persistence.db import db
from persistence.errors import Conflict, InvalidSignature, NotFound
from persistence.direct import DirectStatement
from persistence.idempotency import claim_key
from persistence.models import LIVE_ITEMS, Booking, Cart, CartItem, Payment, Service
from persistence.rows import BookingRow, CartRow, PaymentRow
from persistence.writer import CART, PAYMENT, Step, TransitionConflict, record_refusal, transition, \
    transition_together

log = structlog.get_logger()

_TXN_ALPHABET = string.ascii_uppercase + string.digits


def new_transaction_id() -> str:
    return "TXN" + "".join(secrets.choice(_TXN_ALPHABET) for _ in range(12))


@dataclass(frozen=True)
class PaymentView:
    payment: Payment | PaymentRow
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
    """Records a webhook event in whichever transaction settles it, exactly once."""

    def take(self) -> bool:
        """Inside the transaction, first: False if the event was already recorded."""

    def settle(self, outcome: str) -> None:
        """Inside the same transaction, last: record what the event did."""


def find_payment(owner_id: str, transaction_id: str) -> Payment:
    payment = db.session.scalar(
        select(Payment).where(Payment.transaction_id == transaction_id, Payment.user_id == owner_id)
    )
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
    IntegrityError (after rolling back) when another request holds the key.
    """
    cart = carts.find_cart(user_id, cart_id, for_update=True)
    if cart.status != CartStatus.ACTIVE:
        raise Conflict("cart_not_active", f"The cart is {cart.status}; only an ACTIVE cart can be paid for.")
    count, total = carts.cart_total(cart_id)
    if count == 0:
        raise Conflict("cart_empty", "The cart has no items to pay for.")
    if cart.selected_date is None or cart.selected_time is None:
        raise Conflict("booking_slot_missing", "Choose selected_date and selected_time before paying.")
    payment = Payment(transaction_id=new_transaction_id(), cart_id=cart_id, user_id=user_id,
                      status=PaymentStatus.INITIATED.value, amount=total, currency=currency,
                      created_at=now, updated_at=now)
    db.session.add(payment)
    db.session.flush()  # the key row refers to the payment: insert the payment first
    if idempotency is not None:
        key, request_hash = idempotency
        claim_key(user_id, key, request_hash, payment.transaction_id, now=now)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise
    log.info("payment.created", transaction_id=payment.transaction_id, cart_id=cart_id, actor=actor)
    return payment


def submit_payment(payment: Payment, provider_order_id: str, *, actor: str, now: datetime) -> PaymentView:
    """The gateway order exists: INITIATED -> PENDING."""
    transition(db.session, PAYMENT, payment.transaction_id, "submit", observed=payment.status, actor=actor,
               now=now, values={"provider_order_id": provider_order_id}, loaded=payment)
    db.session.commit()
    return PaymentView(payment, None)


def confirm(owner_id: str, transaction_id: str, provider_payment_id: str, signature: str, *,
            verify: Callable[[str, str, str], bool], actor: str, now: datetime) -> Captured:
    """The customer's return from the gateway: verify the signature, then capture."""
    found = _payment_cart_and_items(owner_id, transaction_id)
    if found is None:
        raise NotFound("payment")
    payment, cart, items = found
    if not payment.provider_order_id or not verify(payment.provider_order_id, provider_payment_id, signature):
        raise InvalidSignature()
    return capture(payment, cart, provider_payment_id, actor=actor, now=now, items=items)


# The confirm's one read: the owner's payment, its cart and the cart's items (stable while a
# payment is open: an open payment locks the cart against edits).
_OWNERS_PAYMENT_CART_ITEMS = DirectStatement(
    select(*PaymentRow.columns(), *CartRow.columns(), CartItem.id, CartItem.service_id, Service.name,
           CartItem.quantity, CartItem.unit_price)
    .join(Cart, Cart.id == Payment.cart_id)
    .outerjoin(CartItem, (CartItem.cart_id == Cart.id) & LIVE_ITEMS)
    .outerjoin(Service, Service.id == CartItem.service_id)
    .where(Payment.transaction_id == bindparam("p_txn"), Payment.user_id == bindparam("p_owner"))
    .order_by(CartItem.created_at, CartItem.id)
)
_PAYMENT_CART_OF_ORDER = DirectStatement(
    select(*PaymentRow.columns(), *CartRow.columns()).join(Cart, Cart.id == Payment.cart_id)
    .where(Payment.provider_order_id == bindparam("p_order")))
_PAYMENT_CART_OF_TXN = DirectStatement(
    select(*PaymentRow.columns(), *CartRow.columns()).join(Cart, Cart.id == Payment.cart_id)
    .where(Payment.transaction_id == bindparam("p_txn")))


def _payment_cart_and_items(owner_id: str, transaction_id: str
                            ) -> tuple[PaymentRow, CartRow, list[carts.ItemView]] | None:
    rows = _OWNERS_PAYMENT_CART_ITEMS.rows(db.session.connection(), {"p_txn": transaction_id, "p_owner": owner_id})
    if not rows:
        return None
    first_item = PaymentRow.width() + CartRow.width()
    items = [carts.ItemView(*row[first_item:]) for row in rows if row[first_item] is not None]
    return *_split(rows[0]), items


def _split(row: tuple) -> tuple[PaymentRow, CartRow]:
    """The payment and the cart of a row that selected `PaymentRow.columns()` then `CartRow.columns()`."""
    return PaymentRow.from_values(row), CartRow.from_values(row, PaymentRow.width())


def _payment_and_cart(statement: DirectStatement, params: dict) -> tuple[PaymentRow, CartRow] | None:
    rows = statement.rows(db.session.connection(), params)
    return _split(rows[0]) if rows else None


def payment_and_cart_of_order(provider_order_id: str) -> tuple[PaymentRow, CartRow] | None:
    """The payment of a gateway order and its cart, in one query."""
    return _payment_and_cart(_PAYMENT_CART_OF_ORDER, {"p_order": provider_order_id})


def capture(payment: PaymentRow, cart: CartRow, provider_payment_id: str, *, actor: str, now: datetime,
            claim: EventClaim | None = None, items: list[carts.ItemView] | None = None) -> Captured:
    """Turn a verified capture into SUCCESS + booking + converted cart, or refuse and record it."""
    if _already_captured(payment, provider_payment_id):
        return _replay(payment, cart, claim)
    try:
        _take(claim)
        captured = _capture_in_one_transaction(payment, cart, provider_payment_id, items, actor=actor, now=now)
        _settle(claim, "captured")
        db.session.commit()
    except (InvalidTransition, TransitionConflict, IntegrityError):
        db.session.rollback()
        current, cart = _payment_and_cart(_PAYMENT_CART_OF_TXN, {"p_txn": payment.transaction_id})
        if _already_captured(current, provider_payment_id):
            return _replay(current, cart, claim)
        _refuse_capture(current, provider_payment_id, actor=actor, now=now, claim=claim)
        raise Conflict("payment_not_pending",
                       f"The payment is {current.status}, not PENDING; the capture was refused and recorded.",
                       status=current.status) from None
    log.info("cart.converted", cart_id=cart.id, booking_id=captured.booking.booking.id,
             transaction_id=payment.transaction_id, actor=actor)
    return captured


_BOOKING_FIELDS = [field.name for field in fields(BookingRow)]
# Which rows a capture moves, as bound parameters: its statement is built once.
_THE_CART = Cart.id == bindparam("p_cart")
_THE_PAYMENT = Payment.transaction_id == bindparam("p_txn")
_ITS_SIBLINGS = (Payment.cart_id == bindparam("p_cart")) & (Payment.transaction_id != bindparam("p_txn"))


def _capture_in_one_transaction(payment: PaymentRow, cart: CartRow, provider_payment_id: str,
                                items: list[carts.ItemView] | None, *, actor: str, now: datetime) -> Captured:
    # The cart first: its row lock serialises every capture of this cart.
    steps = [
        Step(CART, "convert", _THE_CART, observed=cart.status),
        Step(PAYMENT, "succeed", _THE_PAYMENT, observed=payment.status, facts={"verified": True},
             values=("provider_payment_id",)),
        Step(PAYMENT, "supersede", _ITS_SIBLINGS, required=False),
    ]
    booking = BookingRow(id=str(uuid.uuid4()), cart_id=cart.id, transaction_id=payment.transaction_id,
                         user_id=payment.user_id, status="CONFIRMED", selected_date=cart.selected_date,
                         selected_time=cart.selected_time, total=payment.amount, created_at=now)
    params = {"p_cart": cart.id, "p_txn": payment.transaction_id, "p_set_provider_payment_id": provider_payment_id,
              **{f"p_also_{name}": getattr(booking, name) for name in _BOOKING_FIELDS}}
    transition_together(db.session, steps, params=params, shape="capture", actor=actor, now=now,
                        also_insert=Booking.__table__)
    if items is None:
        items = carts.items_of([cart.id])[cart.id]
    succeeded = replace(payment, status=PAYMENT.machine.destination("succeed").value,
                        provider_payment_id=provider_payment_id, updated_at=now)
    converted = replace(cart, status=CART.machine.destination("convert").value, updated_at=now)
    return Captured(PaymentView(succeeded, booking.id), BookingView(booking, items), carts.CartView(converted, items),
                    replayed=False)


def _already_captured(payment: PaymentRow, provider_payment_id: str) -> bool:
    return payment.status == PaymentStatus.SUCCESS and payment.provider_payment_id == provider_payment_id


def _replay(payment: PaymentRow, cart: CartRow, claim: EventClaim | None) -> Captured:
    if claim is not None:
        _take(claim)
        _settle(claim, "already_captured")
        db.session.commit()
    booking = booking_for_payment(payment.transaction_id)
    return Captured(PaymentView(payment, booking.booking.id), booking, carts.CartView(cart, booking.items),
                    replayed=True)


def _refuse_capture(payment: PaymentRow, provider_payment_id: str, *, actor: str, now: datetime,
                    claim: EventClaim | None) -> None:
    _take(claim)
    record_refusal(db.session, PAYMENT, payment.transaction_id, "succeed", from_state=payment.status,
                   to_state=PaymentStatus.SUCCESS.value, actor=actor, now=now,
                   detail={"provider_order_id": payment.provider_order_id,
                           "provider_payment_id": provider_payment_id,
                           "amount": str(payment.amount), "currency": payment.currency})
    _settle(claim, "refused")
    db.session.commit()
    log.warning("payment.late_capture", transaction_id=payment.transaction_id, status=payment.status,
                provider_payment_id=provider_payment_id, amount=str(payment.amount), actor=actor)


def fail(payment: PaymentRow, *, actor: str, now: datetime, claim: EventClaim | None = None) -> str:
    """The gateway says the payment failed; a closed payment is left as it is."""
    _take(claim)
    try:
        transition(db.session, PAYMENT, payment.transaction_id, "fail", observed=payment.status,
                   actor=actor, now=now)
        outcome = "failed"
    except (InvalidTransition, TransitionConflict):
        outcome = "ignored"
    _settle(claim, outcome)
    db.session.commit()
    return outcome


def cancel(owner_id: str, transaction_id: str, *, actor: str, now: datetime) -> PaymentView:
    """The owner gives up on an open payment."""
    payment = find_payment(owner_id, transaction_id)
    try:
        transition(db.session, PAYMENT, transaction_id, "cancel", observed=payment.status, actor=actor, now=now,
                   loaded=payment)
    except (InvalidTransition, TransitionConflict):
        db.session.rollback()
        current = db.session.get(Payment, transaction_id, populate_existing=True)
        raise Conflict("payment_not_open", f"The payment is {current.status}; only an open payment can be "
                                           "cancelled.", status=current.status) from None
    db.session.commit()
    return PaymentView(payment, None)


def _take(claim: EventClaim | None) -> None:
    if claim is not None and not claim.take():
        db.session.rollback()
        raise DuplicateEvent()


def _settle(claim: EventClaim | None, outcome: str) -> None:
    if claim is not None:
        claim.settle(outcome)

