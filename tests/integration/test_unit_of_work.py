"""The unit of work saves nothing unless asked: leaving it any other way rolls everything back."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from persistence.db import db
from persistence.models import Cart, Service
from persistence.uow import unit_of_work
from persistence.writer import CART, transition
from tests.builders import make_cart, register
from tests.conftest import requires_postgres
from tests.integration.support import cart_row, count, history_rows


def _service(app) -> Service:
    return Service(id=str(uuid.uuid4()), name="Massage", price=Decimal("10.00"), duration_minutes=30,
                   created_at=app.config["CLOCK"]())


def test_what_a_unit_commits_is_saved(app):
    with app.app_context():
        with unit_of_work() as uow:
            uow.session.add(_service(app))
            uow.commit()

    assert count(app, Service) == 1


def test_a_unit_left_without_commit_saves_nothing(app):
    with app.app_context():
        with unit_of_work() as uow:
            uow.session.add(_service(app))
            uow.session.flush()  # sent to the database, but never committed

    assert count(app, Service) == 0


def test_a_unit_left_by_an_exception_saves_nothing_not_even_its_transitions(app, client):
    cart = make_cart(app, client, register(client))
    with app.app_context():
        with pytest.raises(RuntimeError), unit_of_work() as uow:
            transition(uow.session, CART, cart["cart_id"], "convert", observed="ACTIVE", actor="test",
                       now=app.config["CLOCK"]())
            raise RuntimeError("the service function failed half-way")

    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"
    assert history_rows(app, "cart", cart["cart_id"]) == []


def test_units_of_work_do_not_nest(app):
    with app.app_context():
        with unit_of_work(), pytest.raises(RuntimeError, match="do not nest"), unit_of_work():
            pass


def test_a_unit_refuses_to_start_over_changes_made_outside_any_unit(app):
    with app.app_context():
        db.session.add(_service(app))
        with pytest.raises(RuntimeError, match="outside a unit of work"), unit_of_work():
            pass
        db.session.rollback()

    assert count(app, Cart) == 0 and count(app, Service) == 0


def _transaction_status(session):
    return session.connection().connection.dbapi_connection.info.transaction_status


@requires_postgres
def test_reads_outside_a_unit_of_work_hold_no_transaction_open_and_a_unit_runs_in_one(app):
    from psycopg.pq import TransactionStatus

    with app.app_context():
        db.session.execute(select(Service.id)).all()
        # Autocommit: nothing stays open between reads, so a connection waiting on a slow gateway
        # is never "idle in transaction", and no BEGIN/ROLLBACK is sent around a read.
        assert _transaction_status(db.session) == TransactionStatus.IDLE
        with unit_of_work() as uow:
            uow.session.add(_service(app))
            uow.session.flush()
            assert _transaction_status(uow.session) == TransactionStatus.INTRANS
        # Left without commit: rolled back, as in any transaction.
        db.session.execute(select(Service.id)).all()
        assert _transaction_status(db.session) == TransactionStatus.IDLE
    assert count(app, Service) == 0


@requires_postgres
@pytest.mark.parametrize("how", ["statement", "flush"])
def test_a_write_after_autocommit_reads_outside_a_unit_of_work_is_refused_and_saves_nothing(app, how):
    with app.app_context():
        db.session.execute(select(Service.id)).all()
        with pytest.raises(RuntimeError, match="outside a unit of work"):
            if how == "flush":
                db.session.add(_service(app))
                db.session.flush()
            else:
                db.session.execute(insert(Service).values(
                    id=str(uuid.uuid4()), name="Massage", price=Decimal("10.00"), duration_minutes=30,
                    created_at=app.config["CLOCK"]()))
        db.session.rollback()
    assert count(app, Service) == 0
