"""What every whole sweep run reports, whoever ran it: one `payments.sweep` event (SPEC §5) and the sweep metrics."""

import structlog

from persistence.sweep import SweepResult
from web import metrics

log = structlog.get_logger()


def milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 2)


def sweep_fields(result: SweepResult) -> dict:
    """The counts and timings of one run, as the `payments.sweep` event carries them."""
    return {"cancelled": len(result.cancelled), "carts": len(result.cart_ids), "batches": result.batches,
            "longest_batch_ms": milliseconds(result.longest_batch_s), "duration_ms": milliseconds(result.duration_s)}


def report_sweep(result: SweepResult) -> None:
    """Count one finished run and log its `payments.sweep` event."""
    metrics.record_sweep(len(result.cancelled), result.duration_s)
    log.info("payments.sweep", **sweep_fields(result))


def report_cart_sweep(result: SweepResult, cart_id: str) -> None:
    """Log the committed sweep of one cart (DELETE, cleanup_old_payments) and count what it cancelled.

    Only its cancellations are counted: runs, duration and last success stay the
    global sweep's, so a dead scheduler is not hidden by customers deleting carts.
    """
    metrics.record_cart_sweep(len(result.cancelled))
    log.info("payments.sweep", cart_id=cart_id, **sweep_fields(result))
