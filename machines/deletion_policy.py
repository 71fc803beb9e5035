"""Cart deletion and payment timing (seed 001): when a payment is stale, who may delete a cart, and when.

Pure rules, no database: every caller (deletion_status, DELETE, the cleanup
endpoint, the sweep, the cleanup command, metrics and the serializers) asks
here. Ages and waits are floored to whole minutes, `retry_after` is exact,
and a payment is stale at exactly `timeout` minutes old. All arithmetic is on
timedeltas, so the minute boundaries are exact to the microsecond.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from machines.cart import CartStatus
from machines.payment import is_open

MINUTE = timedelta(minutes=1)

# The reasons of `deletion_info`, as the API names them.
NO_PAYMENTS = "no_payments"
NO_PENDING_PAYMENTS = "no_pending_payments"
STALE_PENDING_PAYMENTS = "stale_pending_payments"
PENDING_PAYMENT_WAIT = "pending_payment_wait"
CART_CONVERTED = "cart_converted"
CART_DELETED = "cart_deleted"


def stale_cutoff(now: datetime, timeout_minutes: float) -> datetime:
    """A payment created at or before this moment is stale at `now`."""
    return now - timedelta(minutes=timeout_minutes)


def is_stale(created_at: datetime, now: datetime, timeout_minutes: float) -> bool:
    return created_at <= stale_cutoff(now, timeout_minutes)


def expires_at(created_at: datetime, timeout_minutes: float) -> datetime:
    """When a payment created at `created_at` becomes stale."""
    return created_at + timedelta(minutes=timeout_minutes)


def age_minutes(created_at: datetime, now: datetime) -> int:
    """Whole minutes since `created_at`; a clock behind it is age 0, never negative."""
    return max(now - created_at, timedelta(0)) // MINUTE


def minutes_label(minutes: float) -> str:
    """30 -> "30", 0.5 -> "0.5", 1000000 -> "1000000": as people write a threshold (never 1e+06)."""
    return format(Decimal(str(minutes)).normalize(), "f")


def auto_cleanup_message(cancelled: int, timeout_minutes: float) -> str:
    return f"Auto-cancelled {cancelled} pending payment(s) older than {minutes_label(timeout_minutes)} minutes"


def nothing_to_clean_message(timeout_minutes: float) -> str:
    return f"No pending payments older than {minutes_label(timeout_minutes)} minutes"


def wait_message(count: int, wait_minutes: int) -> str:
    """The four message forms of the contract, word for word."""
    who = "Cart has pending payment(s)." if count == 1 else f"Cart has {count} pending payment(s)."
    if wait_minutes == 0:
        return f"{who} Please wait less than 1 minute before deletion."
    complete = "the payment" if count == 1 else "the payments"
    return f"{who} Please wait {wait_minutes} more minute(s) before deletion or complete {complete}."


@dataclass(frozen=True)
class PaymentTiming:
    """What the policy needs of a payment."""

    status: str
    created_at: datetime


@dataclass(frozen=True)
class DeletionInfo:
    can_delete: bool
    reason: str
    message: str
    wait_time_minutes: int | None = None
    retry_after: datetime | None = None
    payment_count: int | None = None
    latest_payment_age_minutes: int | None = None

    def seconds_to_wait(self, now: datetime) -> int:
        """Whole seconds until `retry_after`, rounded up (the Retry-After header)."""
        return -(-(self.retry_after - now) // timedelta(seconds=1))


def deletion_info(cart_status: str, payments: Sequence[PaymentTiming], *, now: datetime,
                  timeout_minutes: float) -> DeletionInfo:
    """Whether a cart in `cart_status` with these payments may be deleted now, and if not, why and until when."""
    if cart_status == CartStatus.CONVERTED:
        return DeletionInfo(False, CART_CONVERTED, "Cart has been converted to a booking and cannot be deleted.")
    if cart_status == CartStatus.DELETED:
        return DeletionInfo(False, CART_DELETED, "Cart is already deleted.")
    if not payments:
        return DeletionInfo(True, NO_PAYMENTS, "Cart has no payments and can be deleted.")
    open_payments = [p for p in payments if is_open(p.status)]
    if not open_payments:
        return DeletionInfo(True, NO_PENDING_PAYMENTS, "Cart has no pending payments and can be deleted.")
    fresh = [p for p in open_payments if not is_stale(p.created_at, now, timeout_minutes)]
    if not fresh:
        return DeletionInfo(True, STALE_PENDING_PAYMENTS,
                            f"Cart has {len(open_payments)} pending payment(s) older than "
                            f"{minutes_label(timeout_minutes)} minutes; they will be auto-cancelled on deletion.")
    newest = max(fresh, key=lambda p: p.created_at)
    age = max(now - newest.created_at, timedelta(0))
    wait = (timedelta(minutes=timeout_minutes) - age) // MINUTE
    return DeletionInfo(False, PENDING_PAYMENT_WAIT, wait_message(len(fresh), wait),
                        wait_time_minutes=wait, retry_after=expires_at(newest.created_at, timeout_minutes),
                        payment_count=len(fresh), latest_payment_age_minutes=age // MINUTE)
