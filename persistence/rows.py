"""Read-only snapshots of rows, for the hot paths that skip ORM loading.

Each has exactly the attribute names of its model, so the serializers and the
service functions read a snapshot and an ORM object alike. A snapshot never
changes; after a transition the writer's caller makes the new one with
`dataclasses.replace`.
"""

from dataclasses import dataclass, fields
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import Column, Table

from persistence.models import Booking, Cart, Payment


class _Snapshot:
    __slots__ = ()
    __table__: Table

    @classmethod
    def columns(cls) -> list[Column]:
        """The model's columns in field order: select these, then build with `from_values`."""
        return [cls.__table__.c[field.name] for field in fields(cls)]

    @classmethod
    def width(cls) -> int:
        return len(cls.__dataclass_fields__)

    @classmethod
    def from_values(cls, values, start: int = 0):
        """The snapshot of `values[start:start + width]`, as selected by `columns()`."""
        return cls(*values[start:start + cls.width()])


@dataclass(frozen=True, slots=True)
class PaymentRow(_Snapshot):
    __table__ = Payment.__table__

    transaction_id: str
    cart_id: str
    user_id: str
    status: str
    amount: Decimal
    currency: str
    provider_order_id: str | None
    provider_payment_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CartRow(_Snapshot):
    __table__ = Cart.__table__

    id: str
    user_id: str
    status: str
    selected_date: date | None
    selected_time: time | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BookingRow(_Snapshot):
    __table__ = Booking.__table__

    id: str
    cart_id: str
    transaction_id: str
    user_id: str
    status: str
    selected_date: date
    selected_time: time
    total: Decimal
    created_at: datetime
