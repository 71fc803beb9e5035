"""Reconciliation: captures the gateway holds for orders we closed go through the late-capture path.

A capture can reach the gateway and never reach us (the customer closed the
tab, the webhook was lost). For every payment that became CANCELLED or FAILED
in the last N hours — and every one that became SUCCESS, whose order may hold
a second capture besides the one that bought its booking — ask the gateway
which provider payments of its order it captured; each one that bought no
booking and has no refund yet is refused,
recorded and refunded exactly as a late confirm or webhook would be
(persistence/payments.py decides under the cart lock, so any number of runs,
also at once and beside the webhook, request one refund). Called by the
scheduler every RECONCILE_INTERVAL_MINUTES and by `flask --app web
reconcile-payments`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from persistence import payments
from web import metrics
from web.gateway import GatewayError, PaymentGateway

ACTOR = "scheduler:reconcile-payments"
DEFAULT_HOURS = 24
_SAID = {"own_success": "its own success", "already_refunded": "already refunded",
         "refund_requested": "refund requested", "captured": "captured into its booking"}

log = structlog.get_logger()


@dataclass
class Reconciliation:
    """One run: the orders checked, the captures found and the refunds requested, with a line per finding."""

    orders: int = 0
    captures: int = 0
    refunds_requested: int = 0
    # Orders the gateway could not tell us about this time; the next run asks again.
    unanswered: int = 0
    lines: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def summary(self) -> str:
        return (f"Checked {self.orders} orders, found {self.captures} captures, "
                f"requested {self.refunds_requested} refunds")


def reconcile(gateway: PaymentGateway, *, clock: Callable[[], datetime], hours: float,
              actor: str = ACTOR) -> Reconciliation:
    """Check the orders of the payments settled in the last `hours` against what the gateway captured.

    A run may last minutes (a gateway call per order): each refusal is stamped when it is recorded.
    """
    run = Reconciliation()
    started = time.perf_counter()
    since = clock() - timedelta(hours=hours)
    for transaction_id, order_id, status, own_capture in payments.orders_settled_since(since):
        where = f"Order {order_id} (payment {transaction_id}, {status})"
        try:
            captured = gateway.captured_payments(order_id)
        except GatewayError as exc:
            run.unanswered += 1
            run.lines.append(f"{where}: the gateway did not answer ({exc})")
            log.warning("reconcile.unanswered", provider_order_id=order_id, transaction_id=transaction_id,
                        error=str(exc))
            continue
        run.orders += 1
        # A SUCCESS payment's own capture is what bought its booking: not a finding.
        captured = [provider_payment_id for provider_payment_id in captured if provider_payment_id != own_capture]
        if not captured:
            continue
        found = []
        for provider_payment_id in captured:
            outcome = payments.capture_found_by_reconciliation(order_id, provider_payment_id, actor=actor,
                                                               now=clock())
            run.captures += 1
            run.refunds_requested += outcome == "refund_requested"
            found.append(f"{provider_payment_id} {_SAID[outcome]}")
        run.lines.append(f"{where}: " + ", ".join(found))
    run.duration_s = time.perf_counter() - started
    return run


def report(run: Reconciliation) -> None:
    """Count one finished run and log its `payments.reconcile` event."""
    metrics.record_reconcile_run()
    log.info("payments.reconcile", orders=run.orders, captures=run.captures, refunds_requested=run.refunds_requested,
             unanswered=run.unanswered, duration_ms=round(run.duration_s * 1000, 2))
