"""A gateway for tests: the offline gateway's signatures, with a memory and faults on demand.

It remembers the refunds it made (by our refund_id, as Razorpay keeps our
refund_id in the refund's notes) and the captures of each order, and can be
told to fail its next calls:
- "transient": raise TransientGatewayError (network, timeout, 5xx);
- "permanent": raise PermanentGatewayError (4xx);
- "lost_answer": do the refund, then raise TransientGatewayError, as a crash
  or a dropped connection after the gateway refunded but before we heard.
"""

import threading
from collections import defaultdict, deque
from decimal import Decimal

from web.config import DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET
from web.gateway import GatewayRefund, OfflineGateway, PermanentGatewayError, TransientGatewayError, \
    offline_refund_id


class ScriptedGateway(OfflineGateway):
    def __init__(self):
        super().__init__(DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET)
        self._lock = threading.Lock()
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        # refund_id -> (provider_payment_id, amount, currency, GatewayRefund)
        self.refunds: dict[str, tuple[str, Decimal, str, GatewayRefund]] = {}
        # Every refund call that reached the gateway, in order: (refund_id, provider_payment_id).
        self.refund_calls: list[tuple[str, str]] = []
        self.captures: dict[str, list[str]] = defaultdict(list)
        # What a new refund becomes: "processed" (at once, as the offline gateway) or "pending".
        self.refund_status = "processed"

    def fail_next(self, call: str, fault: str, times: int = 1) -> None:
        """Make the next `times` calls of `call` (refund, find_refund, captured_payments) fail with `fault`."""
        with self._lock:
            self._faults[call].extend([fault] * times)

    def capture(self, provider_order_id: str, provider_payment_id: str) -> None:
        """The gateway captured a payment of this order (whether or not we ever hear of it)."""
        with self._lock:
            self.captures[provider_order_id].append(provider_payment_id)

    def settle(self, refund_id: str, status: str) -> GatewayRefund:
        """The gateway settles a pending refund (what its refund.processed / refund.failed event reports).

    `refund_id` is the key the refund was sent under (our refund_id before any admin retry)."""
        with self._lock:
            payment_id, amount, currency, refund = self.refunds[refund_id]
            settled = GatewayRefund(refund.provider_refund_id, status)
            self.refunds[refund_id] = (payment_id, amount, currency, settled)
            return settled

    def refunded_amount(self, provider_payment_id: str) -> Decimal:
        """What the customer got back for one provider payment, however many refunds were asked for."""
        with self._lock:
            return sum((amount for pid, amount, _, r in self.refunds.values()
                        if pid == provider_payment_id and r.status != "failed"), Decimal(0))

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, refund_id: str) -> GatewayRefund:
        fault = self._fault("refund")
        with self._lock:
            if fault in ("transient", "permanent"):
                self._raise(fault)
            self.refund_calls.append((refund_id, provider_payment_id))
            if refund_id not in self.refunds:
                made = GatewayRefund(offline_refund_id(refund_id), self.refund_status)
                self.refunds[refund_id] = (provider_payment_id, amount, currency, made)
            if fault == "lost_answer":
                raise TransientGatewayError("connection reset after the refund was made")
            return self.refunds[refund_id][3]

    def find_refund(self, provider_payment_id: str, refund_id: str) -> GatewayRefund | None:
        self._raise(self._fault("find_refund"))
        with self._lock:
            found = self.refunds.get(refund_id)
            return found[3] if found and found[0] == provider_payment_id else None

    def captured_payments(self, provider_order_id: str) -> list[str]:
        self._raise(self._fault("captured_payments"))
        with self._lock:
            return list(self.captures.get(provider_order_id, []))

    def _fault(self, call: str) -> str | None:
        with self._lock:
            return self._faults[call].popleft() if self._faults[call] else None

    @staticmethod
    def _raise(fault: str | None) -> None:
        if fault == "transient":
            raise TransientGatewayError("gateway timed out")
        if fault == "permanent":
            raise PermanentGatewayError("400 BAD_REQUEST_ERROR: the payment cannot be refunded")
