"""Response JSON in the shapes of SPEC §3."""

from datetime import UTC, datetime
from decimal import Decimal

from machines.deletion_policy import expires_at
from persistence.bookings import BookingView
from persistence.carts import CartView, ItemView
from persistence.models import Service, TransitionRecord
from persistence.payments import PaymentView

CENTS = Decimal("0.01")


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds and Z: 2025-07-20T03:30:00.000Z."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def money(amount: Decimal) -> str:
    return str(Decimal(amount).quantize(CENTS))


def service_json(service: Service) -> dict:
    return {"service_id": service.id, "name": service.name, "price": money(service.price),
            "duration_minutes": service.duration_minutes}


def item_json(item: ItemView) -> dict:
    return {"item_id": item.item_id, "service_id": item.service_id, "name": item.name,
            "quantity": item.quantity, "unit_price": money(item.unit_price), "line_total": money(item.line_total)}


def _slot(selected_date, selected_time) -> dict:
    return {"selected_date": selected_date.isoformat() if selected_date else None,
            "selected_time": selected_time.strftime("%H:%M") if selected_time else None}


def cart_json(view: CartView) -> dict:
    cart = view.cart
    return {"cart_id": cart.id, "status": cart.status, "items": [item_json(i) for i in view.items],
            "total": money(view.total), **_slot(cart.selected_date, cart.selected_time),
            "created_at": iso(cart.created_at), "updated_at": iso(cart.updated_at)}


def payment_json(view: PaymentView, timeout_minutes: float) -> dict:
    payment = view.payment
    return {"transaction_id": payment.transaction_id, "cart_id": payment.cart_id, "status": payment.status,
            "amount": money(payment.amount), "currency": payment.currency,
            "provider_order_id": payment.provider_order_id, "created_at": iso(payment.created_at),
            "updated_at": iso(payment.updated_at),
            "expires_at": iso(expires_at(payment.created_at, timeout_minutes)),
            "booking_id": view.booking_id}


def booking_json(view: BookingView) -> dict:
    booking = view.booking
    return {"booking_id": booking.id, "cart_id": booking.cart_id, "transaction_id": booking.transaction_id,
            "status": booking.status, **_slot(booking.selected_date, booking.selected_time),
            "items": [item_json(i) for i in view.items], "total": money(view.total),
            "created_at": iso(booking.created_at)}


def history_json(records: list[TransitionRecord]) -> list[dict]:
    return [{"from": r.from_state, "to": r.to_state, "trigger": r.trigger, "actor": r.actor, "at": iso(r.at),
             "accepted": r.accepted} for r in records]
