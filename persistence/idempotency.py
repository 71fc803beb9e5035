"""Stored answers to payment-creation requests sent with an Idempotency-Key."""

from sqlalchemy import select, update

from persistence.db import db
from persistence.models import IdempotencyKey
from persistence.uow import unit_of_work


def find(user_id: str, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )


def store_response(user_id: str, key: str, status: int, body: dict) -> None:
    with unit_of_work() as uow:
        uow.session.execute(update(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                            .values(response_status=status, response_body=body))
        uow.commit()
