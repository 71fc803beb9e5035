"""Refunds: a captured provider payment that bought no booking is refunded, exactly once.

A refund is requested in the unit of work that records the refused capture
(persistence/payments.py), under that payment's cart lock, so every path that
can refuse a capture (confirm, webhook, and later reconciliation) requests it
the same way; the unique provider_payment_id makes it one whatever the path.
"""

from datetime import datetime

from sqlalchemy import select

from machines import REFUND_MACHINE
from machines.ids import new_uuid
from persistence.models import Payment, Refund
from persistence.uow import UnitOfWork


def request_refund(uow: UnitOfWork, payment: Payment, provider_payment_id: str, *, now: datetime) -> Refund:
    """The refund of `provider_payment_id`, requested now unless it already was; the payment's cart is locked."""
    refund = uow.session.scalar(select(Refund).where(Refund.provider_payment_id == provider_payment_id))
    if refund is None:
        refund = Refund(id=new_uuid(), transaction_id=payment.transaction_id,
                        provider_payment_id=provider_payment_id, amount=payment.amount, currency=payment.currency,
                        status=REFUND_MACHINE.initial.value, attempts=0, next_attempt_at=now, created_at=now,
                        updated_at=now)
        uow.session.add(refund)
    return refund
