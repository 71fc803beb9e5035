"""State machines for carts and payments: the only definition of allowed moves."""

from machines.cart import CART_MACHINE, CartStatus
from machines.errors import InvalidTransition
from machines.payment import OPEN_PAYMENT_STATES, PAYMENT_MACHINE, PaymentStatus

__all__ = [
    "CART_MACHINE",
    "CartStatus",
    "InvalidTransition",
    "OPEN_PAYMENT_STATES",
    "PAYMENT_MACHINE",
    "PaymentStatus",
]
