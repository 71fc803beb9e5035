"""The payment state machine."""

import enum

from machines.table import TransitionTable


class PaymentStatus(str, enum.Enum):
    INITIATED = "INITIATED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


P = PaymentStatus


def capture_verified(event) -> bool:
    """Guard: a capture counts only with a checked signature or a signed webhook."""
    return event.kwargs.get("verified") is True


OPEN_PAYMENT_STATES = (P.INITIATED, P.PENDING)


def is_open(status: str) -> bool:
    """An open payment may still be captured, failed, cancelled or timed out."""
    return status in OPEN_PAYMENT_STATES

PAYMENT_TRANSITIONS = [
    # The gateway order exists.
    {"trigger": "submit", "source": [P.INITIATED], "dest": P.PENDING},
    {"trigger": "succeed", "source": [P.PENDING], "dest": P.SUCCESS, "conditions": [capture_verified]},
    {"trigger": "fail", "source": list(OPEN_PAYMENT_STATES), "dest": P.FAILED},
    # The owner gave up on it.
    {"trigger": "cancel", "source": list(OPEN_PAYMENT_STATES), "dest": P.CANCELLED},
    # The sweep found it stale.
    {"trigger": "timeout", "source": list(OPEN_PAYMENT_STATES), "dest": P.CANCELLED},
    # A sibling payment of the same cart succeeded.
    {"trigger": "supersede", "source": list(OPEN_PAYMENT_STATES), "dest": P.CANCELLED},
]

PAYMENT_MACHINE = TransitionTable("payment", PaymentStatus, P.INITIATED, PAYMENT_TRANSITIONS)
