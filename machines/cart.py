"""The cart state machine."""

import enum

from machines.table import TransitionTable


class CartStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    CONVERTED = "CONVERTED"
    DELETED = "DELETED"


C = CartStatus


def no_fresh_open_payments(event) -> bool:
    """Guard: a cart with a payment still in flight (and not yet stale) may not be deleted."""
    return event.kwargs.get("fresh_open_payments") == 0


CART_TRANSITIONS = [
    # A verified payment booked it.
    {"trigger": "convert", "source": [C.ACTIVE], "dest": C.CONVERTED},
    # The owner deleted it; rows are never hard-deleted.
    {"trigger": "delete", "source": [C.ACTIVE], "dest": C.DELETED, "conditions": [no_fresh_open_payments]},
]

CART_MACHINE = TransitionTable("cart", CartStatus, C.ACTIVE, CART_TRANSITIONS)
