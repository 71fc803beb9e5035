"""The refund state machine: money the gateway captured that bought no booking, on its way back."""

import enum

from machines.table import TransitionTable


class RefundStatus(str, enum.Enum):
    REQUESTED = "REQUESTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


R = RefundStatus

REFUND_TRANSITIONS = [
    # The gateway refunded it.
    {"trigger": "succeed", "source": [R.REQUESTED], "dest": R.SUCCEEDED},
    # The gateway refused for good, or the attempts ran out.
    {"trigger": "fail", "source": [R.REQUESTED], "dest": R.FAILED},
    # An admin asks again.
    {"trigger": "retry", "source": [R.FAILED], "dest": R.REQUESTED},
]

REFUND_MACHINE = TransitionTable("refund", RefundStatus, R.REQUESTED, REFUND_TRANSITIONS)
