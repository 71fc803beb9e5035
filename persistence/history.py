"""Reading the transition history."""

from sqlalchemy import select

from persistence.db import db
from persistence.models import TransitionRecord


def history(entity: str, entity_id: str) -> list[TransitionRecord]:
    """Every recorded transition of one entity, accepted or refused, oldest first."""
    return list(db.session.scalars(
        select(TransitionRecord)
        .where(TransitionRecord.entity == entity, TransitionRecord.entity_id == entity_id)
        .order_by(TransitionRecord.id)
    ))
