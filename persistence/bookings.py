"""Bookings, read side."""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from persistence.carts import ItemView, items_of
from persistence.db import db
from persistence.errors import NotFound
from persistence.models import Booking


@dataclass(frozen=True)
class BookingView:
    booking: Booking
    items: list[ItemView]

    @property
    def total(self) -> Decimal:
        return self.booking.total


def views(bookings: list[Booking]) -> list[BookingView]:
    items = items_of([b.cart_id for b in bookings]) if bookings else {}
    return [BookingView(b, items[b.cart_id]) for b in bookings]


def list_bookings(user_id: str) -> list[BookingView]:
    return views(list(db.session.scalars(
        select(Booking).where(Booking.user_id == user_id).order_by(Booking.created_at.desc(), Booking.id)
    )))


def get_booking(user_id: str, booking_id: str) -> BookingView:
    booking = db.session.scalar(select(Booking).where(Booking.id == booking_id, Booking.user_id == user_id))
    if booking is None:
        raise NotFound("booking")
    return views([booking])[0]


def booking_for_payment(transaction_id: str) -> BookingView | None:
    booking = db.session.scalar(select(Booking).where(Booking.transaction_id == transaction_id))
    return views([booking])[0] if booking else None
