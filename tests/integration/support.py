"""Helpers for integration tests: read the database directly, outside any request."""

from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import event, func, select

from persistence.db import db
from persistence.models import Cart, Payment, TransitionRecord
from persistence.uow import unit_of_work
from persistence.writer import CART, transition
from tests.builders import confirm, make_cart, make_payment, register
from web.config import DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET
from web.gateway import GatewayError, OfflineGateway


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table, so a test can assert that nothing changed."""
    with app.app_context():
        with db.engine.connect() as conn:
            return {
                table.name: sorted(tuple(repr(value) for value in row) for row in conn.execute(table.select()))
                for table in db.metadata.sorted_tables
            }


@contextmanager
def statements_failing(app, fragment: str, error: Exception):
    """Every statement whose SQL contains `fragment` raises `error` before it reaches the database."""
    def failing(_conn, _cursor, statement, *_args):
        if fragment in statement:
            raise error

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", failing)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", failing)


@contextmanager
def statements_recorded(app):
    """The SQL of every statement sent to the database while the block runs, as a list that fills up."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def payment_row(app, transaction_id: str) -> Payment:
    with app.app_context():
        return db.session.get(Payment, transaction_id)


def cart_row(app, cart_id: str) -> Cart:
    with app.app_context():
        return db.session.get(Cart, cart_id)


def history_rows(app, entity: str, entity_id: str) -> list[tuple]:
    with app.app_context():
        return [(r.from_state, r.to_state, r.trigger, r.actor, r.accepted) for r in db.session.scalars(
            select(TransitionRecord).where(TransitionRecord.entity == entity, TransitionRecord.entity_id == entity_id)
            .order_by(TransitionRecord.id))]


def delete_cart_directly(app, cart_id: str) -> None:
    """Put a cart in DELETED through the writer (the deletion endpoint is not under test here)."""
    with app.app_context(), unit_of_work() as uow:
        transition(uow.session, CART, cart_id, "delete", observed="ACTIVE", actor="test", now=app.config["CLOCK"](),
                   facts={"fresh_open_payments": 0})
        uow.commit()


def set_service_price(app, service_id: str, price: str) -> None:
    from persistence.models import Service

    with app.app_context(), unit_of_work() as uow:
        uow.session.get(Service, service_id).price = Decimal(price)
        uow.commit()


def make_booking(app, client, user: dict | None = None, **cart_options) -> dict:
    """A confirmed booking; returns the confirm body plus the user."""
    user = user or register(client)
    cart = make_cart(app, client, user, **cart_options)
    payment = make_payment(app, client, user, cart["cart_id"])
    response = confirm(app, client, user, payment)
    assert response.status_code == 200, response.json
    return {**response.json, "user": user}


class FailingGateway(OfflineGateway):
    """The offline gateway whose order creation always fails."""

    def __init__(self):
        super().__init__(DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET)
        self.attempts = 0

    def create_order(self, **kwargs) -> str:
        self.attempts += 1
        raise GatewayError("gateway down")


def assert_json_error(response, status: int, **expected) -> dict:
    """`response` is a JSON error envelope with `status`, and with the `expected` fields."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("detail"), str) and body["detail"]
    if status == 409:
        assert isinstance(body.get("reason"), str) and body["reason"], body
    for name, value in expected.items():
        assert body.get(name) == value, (name, body)
    return body
