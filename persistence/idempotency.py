"""Payment-creation requests seen under an Idempotency-Key, and the answers they got.

A key is claimed in the transaction that records its payment (`claim_key`, called
by `payments.begin_payment`), so of concurrent requests with one key exactly
one records a payment. Its answer is kept once (`store_answer`) and replayed.
A key is kept for `KEPT_FOR` after it was claimed; after that it is as good as
new, and the next request with it claims it again.
"""

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import select, update

from persistence.db import db
from persistence.models import IdempotencyKey
from persistence.uow import unit_of_work

KEPT_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class SeenKey:
    """The request last seen under a key: its body's fingerprint, its payment and, once given, its answer."""

    user_id: str
    key: str
    request_hash: str
    transaction_id: str
    response_status: int | None
    response_body: dict | None
    created_at: datetime


# Plain data, not the ORM object: a takeover then adds no second object with the row's identity to the session.
_SEEN_KEY = select(*(IdempotencyKey.__table__.c[f.name] for f in fields(SeenKey)))


def find(user_id: str, key: str) -> SeenKey | None:
    row = db.session.execute(
        _SEEN_KEY.where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)).one_or_none()
    return SeenKey(**row._mapping) if row is not None else None


def expired(seen: SeenKey, now: datetime) -> bool:
    return now - seen.created_at >= KEPT_FOR


def claim_key(user_id: str, key: str, request_hash: str, transaction_id: str, *, now: datetime) -> None:
    """Claim the key for a payment being recorded, in the caller's transaction.

    An expired key is taken over in place rather than deleted and inserted
    again: the row stays the one record of the latest request under the key,
    and the UPDATE's guard (still expired, read under the row's lock) lets one
    of several concurrent takeovers win. Otherwise a new row is added, and the
    caller's commit raises IntegrityError if another request holds the key:
    a concurrent first use, a concurrent takeover that won, or a live key.
    """
    taken_over = db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key,
               IdempotencyKey.created_at <= now - KEPT_FOR)
        .values(request_hash=request_hash, transaction_id=transaction_id, response_status=None,
                response_body=None, created_at=now)
    ).rowcount
    if not taken_over:
        db.session.add(IdempotencyKey(user_id=user_id, key=key, request_hash=request_hash,
                                      transaction_id=transaction_id, created_at=now))


def store_answer(user_id: str, key: str, transaction_id: str, status: int, body: dict) -> tuple[int, dict]:
    """Keep the first answer given for the key's payment, and return the answer kept.

    Only a key still held by this payment and still unanswered takes it: the
    request that claimed the key and a replay answering for it after it died
    (web/checkout.py) may both get here, and every later replay must see one answer.
    """
    with unit_of_work() as uow:
        stored = uow.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key,
                   IdempotencyKey.transaction_id == transaction_id, IdempotencyKey.response_status.is_(None))
            .values(response_status=status, response_body=body)
        ).rowcount
        uow.commit()
    if stored:
        return status, body
    kept = find(user_id, key)
    if kept is None or kept.transaction_id != transaction_id or kept.response_status is None:
        return status, body  # the key was taken over since: this request's answer is its own
    return kept.response_status, kept.response_body
