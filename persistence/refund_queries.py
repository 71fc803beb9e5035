"""Reading refunds: those of one of the caller's payments, and every refund a page at a time (for admins).

The admin list is ordered newest first by (created_at, id), both fixed when
the refund is requested, so a refund keeps its place whatever happens to it
later: a page that starts after a given refund never skips or repeats one.
"""

from sqlalchemy import and_, or_, select

from machines import RefundStatus
from persistence.db import db
from persistence.errors import InvalidFields
from persistence.models import Refund
from persistence.payments import find_payment

NEWEST_FIRST = (Refund.created_at.desc(), Refund.id.desc())


def refunds_of_payment(owner_id: str, transaction_id: str) -> list[Refund]:
    """The refunds of one of the caller's payments, oldest first; another user's payment is not found."""
    find_payment(owner_id, transaction_id)
    return list(db.session.scalars(select(Refund).where(Refund.transaction_id == transaction_id)
                                   .order_by(Refund.created_at, Refund.id)))


def refund_page(*, status: RefundStatus | None, limit: int, before: str | None) -> list[Refund]:
    """Up to `limit` refunds (of `status`, if given), newest first, starting after the refund `before` if given.

    `before` is only a position: the refund it names need not have `status`.
    An id that is no refund's is an InvalidFields on `before`.
    """
    query = select(Refund).order_by(*NEWEST_FIRST).limit(limit)
    if status is not None:
        query = query.where(Refund.status == status.value)
    if before is not None:
        anchor = db.session.execute(select(Refund.created_at, Refund.id).where(Refund.id == before)).first()
        if anchor is None:
            raise InvalidFields({"before": "is not the refund_id of any refund"},
                                detail="No refund has the refund_id given as `before`; pass the refund_id of "
                                       "the last refund of the previous page.")
        query = query.where(or_(Refund.created_at < anchor.created_at,
                                and_(Refund.created_at == anchor.created_at, Refund.id < anchor.id)))
    return list(db.session.scalars(query))
