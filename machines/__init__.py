"""State machines for carts, payments and refunds, and the pure rules around them: the only definition of allowed moves."""

from machines.booking import BookingStatus
from machines.cart import CART_MACHINE, CartStatus
from machines.errors import InvalidTransition
from machines.payment import OPEN_PAYMENT_STATES, PAYMENT_MACHINE, PaymentStatus, is_open
from machines.refund import REFUND_MACHINE, RefundStatus

__all__ = [
    "BookingStatus",
    "CART_MACHINE",
    "CartStatus",
    "InvalidTransition",
    "OPEN_PAYMENT_STATES",
    "PAYMENT_MACHINE",
    "PaymentStatus",
    "REFUND_MACHINE",
    "RefundStatus",
    "is_open",
]
