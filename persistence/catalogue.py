"""The services a customer can book."""

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from persistence.db import db
from persistence.models import Service


def list_services() -> list[Service]:
    return list(db.session.scalars(select(Service).order_by(Service.name, Service.id)))


def create_service(name: str, price: Decimal, duration_minutes: int, *, now: datetime) -> Service:
    service = Service(id=str(uuid.uuid4()), name=name, price=price, duration_minutes=duration_minutes,
                      created_at=now)
    db.session.add(service)
    db.session.commit()
    return service
