"""The services a customer can book."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from machines.ids import new_uuid
from persistence.db import db
from persistence.models import Service
from persistence.uow import unit_of_work


def list_services() -> list[Service]:
    return list(db.session.scalars(select(Service).order_by(Service.name, Service.id)))


def create_service(name: str, price: Decimal, duration_minutes: int, *, now: datetime) -> Service:
    service = Service(id=new_uuid(), name=name, price=price, duration_minutes=duration_minutes,
                      created_at=now)
    with unit_of_work() as uow:
        uow.session.add(service)
        uow.commit()
    return service
