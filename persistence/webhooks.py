"""Gateway events: recorded once by event id, in the same unit of work as their effect; others ignored."""

from datetime import datetime

import structlog
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from persistence import payments, refunds
from persistence.db import db
from persistence.models import WebhookEvent

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# The events the service acts on; a gateway may send others (Razorpay: order.paid, payment.authorized...).
EVENTS = ("payment.captured", "payment.failed", "refund.processed", "refund.failed")

log = structlog.get_logger()


class WebhookClaim:
    """An `EventClaim` backed by the webhook_events table's primary key."""

    def __init__(self, event_id: str, event: str, provider_order_id: str, provider_payment_id: str,
                 now: datetime):
        self.values = dict(event_id=event_id, event=event, provider_order_id=provider_order_id,
                           provider_payment_id=provider_payment_id, outcome="processing", received_at=now)

    def take(self) -> bool:
        # ON CONFLICT DO NOTHING waits for a concurrent insert of the same id to
        # finish, then reports whether this transaction is the one that recorded it.
        insert = _INSERT[db.session.get_bind().dialect.name]
        statement = (insert(WebhookEvent).values(**self.values).on_conflict_do_nothing()
                     .returning(WebhookEvent.event_id))
        return db.session.execute(statement).first() is not None

    def settle(self, outcome: str) -> None:
        db.session.execute(update(WebhookEvent).where(WebhookEvent.event_id == self.values["event_id"])
                           .values(outcome=outcome))


def handle_event(event_id: str, event: str, provider_order_id: str, provider_payment_id: str,
                 provider_refund_id: str | None = None, *, refund_id: str | None = None, now: datetime) -> str:
    """Apply one signed gateway event and return its outcome; a seen event id does nothing.

    `refund_id` is our refund_id as the gateway's refund carries it, where its events say (see
    `refunds.settle_from_gateway`). An event not among EVENTS changes nothing and is not recorded: `ignored`.
    """
    if event not in EVENTS:
        log.info("webhook.ignored", event_id=event_id, gateway_event=event)
        return "ignored"
    claim = WebhookClaim(event_id, event, provider_order_id, provider_payment_id, now)
    actor = f"webhook:{event_id}"
    if event in ("refund.processed", "refund.failed"):
        return refunds.settle_from_gateway(provider_payment_id, provider_refund_id, event == "refund.processed",
                                           refund_id=refund_id, actor=actor, now=now, claim=claim)
    try:
        if event == "payment.captured":
            return payments.capture_of_order(provider_order_id, provider_payment_id, actor=actor, now=now,
                                             claim=claim)
        return payments.fail_of_order(provider_order_id, actor=actor, now=now, claim=claim)
    except payments.DuplicateEvent:
        return "duplicate"
