"""The transition writer: compare-and-set, one history row per accepted move, rollback leaves nothing."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from machines import InvalidTransition
from persistence.db import db
from persistence.models import Cart, Payment, TransitionRecord
from persistence.uow import unit_of_work
from persistence.writer import CART, PAYMENT, TransitionConflict, record_refusal, transition, transition_all
from tests.builders import make_cart, make_payment, register

NOW = datetime(2030, 1, 15, 12, 30, tzinfo=UTC)


@pytest.fixture
def cart_id(app, client):
    return make_cart(app, client, register(client))["cart_id"]


def _history():
    return [(r.entity, r.entity_id, r.from_state, r.to_state, r.trigger, r.actor, r.at, r.accepted)
            for r in db.session.scalars(select(TransitionRecord).order_by(TransitionRecord.id))]


def _status(model, entity_id):
    return db.session.get(model, entity_id, populate_existing=True).status


def test_an_accepted_transition_moves_the_row_and_records_exactly_one_history_row(app, cart_id):
    with app.app_context():
        moved = transition(db.session, CART, cart_id, "convert", observed="ACTIVE", actor="tester", now=NOW)
        db.session.commit()

        assert (moved.from_state, moved.to_state, moved.trigger, moved.actor) == ("ACTIVE", "CONVERTED", "convert",
                                                                                 "tester")
        assert _status(Cart, cart_id) == "CONVERTED"
        assert db.session.get(Cart, cart_id).updated_at == NOW
        assert _history() == [("cart", cart_id, "ACTIVE", "CONVERTED", "convert", "tester", NOW, True)]


def test_the_write_is_refused_when_the_row_moved_since_it_was_read(app, cart_id):
    with app.app_context():
        transition(db.session, CART, cart_id, "delete", observed="ACTIVE", actor="first", now=NOW,
                   facts={"fresh_open_payments": 0})
        db.session.commit()
        before = _history()

        with unit_of_work() as uow, pytest.raises(TransitionConflict) as conflict:
            transition(uow.session, CART, cart_id, "convert", observed="ACTIVE", actor="second", now=NOW)

        assert (conflict.value.entity, conflict.value.entity_id, conflict.value.trigger) == ("cart", cart_id,
                                                                                           "convert")
        assert _status(Cart, cart_id) == "DELETED"
        assert _history() == before


def test_a_conflict_writes_no_history_even_before_rollback(app, cart_id):
    with app.app_context():
        transition(db.session, CART, cart_id, "convert", observed="ACTIVE", actor="first", now=NOW)
        with pytest.raises(TransitionConflict):
            transition(db.session, CART, cart_id, "convert", observed="ACTIVE", actor="second", now=NOW)
        db.session.commit()

        assert [h[5] for h in _history()] == ["first"]


def test_a_trigger_the_machine_refuses_never_reaches_the_database(app, cart_id):
    with app.app_context():
        with pytest.raises(InvalidTransition):
            transition(db.session, CART, cart_id, "convert", observed="CONVERTED", actor="x", now=NOW)
        with pytest.raises(InvalidTransition):
            transition(db.session, CART, cart_id, "delete", observed="ACTIVE", actor="x", now=NOW,
                       facts={"fresh_open_payments": 2})
        db.session.commit()

        assert _status(Cart, cart_id) == "ACTIVE"
        assert _history() == []


def test_a_rollback_leaves_neither_the_move_nor_its_history(app, cart_id):
    """History rows are written as the unit commits; a rollback takes the move back and drops them."""
    with app.app_context():
        transition(db.session, CART, cart_id, "convert", observed="ACTIVE", actor="x", now=NOW)
        assert _status(Cart, cart_id) == "CONVERTED"  # visible inside the transaction
        db.session.rollback()

        assert _status(Cart, cart_id) == "ACTIVE"
        assert _history() == []


def test_values_are_written_in_the_same_update_and_a_loaded_object_is_kept_in_step(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    with app.app_context():
        loaded = db.session.get(Payment, payment["transaction_id"])
        with unit_of_work() as uow:
            transition(uow.session, PAYMENT, loaded.transaction_id, "succeed", observed="PENDING", actor="x",
                       now=NOW, facts={"verified": True}, values={"provider_payment_id": "pay_w"}, loaded=loaded)
            uow.commit()
        assert (loaded.status, loaded.provider_payment_id, loaded.updated_at) == ("SUCCESS", "pay_w", NOW)
        fresh = db.session.get(Payment, payment["transaction_id"], populate_existing=True)
        assert (fresh.status, fresh.provider_payment_id, fresh.updated_at) == ("SUCCESS", "pay_w", NOW)


def test_the_guard_facts_are_enforced_by_the_writer(app, client):
    user = register(client)
    payment = make_payment(app, client, user)
    with app.app_context():
        with pytest.raises(InvalidTransition):
            transition(db.session, PAYMENT, payment["transaction_id"], "succeed", observed="PENDING", actor="x",
                       now=NOW)
        db.session.commit()
        assert _status(Payment, payment["transaction_id"]) == "PENDING"


def test_a_bulk_transition_moves_only_rows_in_a_source_state_and_records_one_row_each(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    open_one = make_payment(app, client, user, cart["cart_id"])["transaction_id"]
    open_two = make_payment(app, client, user, cart["cart_id"])["transaction_id"]
    closed = make_payment(app, client, user, cart["cart_id"])["transaction_id"]
    client.post(f"/api/payments/{closed}/cancel/", headers=user["headers"])
    with app.app_context():
        before = len(_history())
        with unit_of_work() as uow:
            moved = transition_all(uow.session, PAYMENT, "timeout", Payment.cart_id == cart["cart_id"],
                                   actor="sweep", now=NOW)
            uow.commit()

        assert sorted(m.entity_id for m in moved) == sorted([open_one, open_two])
        assert {(m.from_state, m.to_state, m.trigger) for m in moved} == {("PENDING", "CANCELLED", "timeout")}
        new = _history()[before:]
        assert sorted((h[1], h[2], h[3], h[4], h[5], h[7]) for h in new) == sorted(
            (txn, "PENDING", "CANCELLED", "timeout", "sweep", True) for txn in (open_one, open_two))
        assert [_status(Payment, t) for t in (open_one, open_two, closed)] == ["CANCELLED"] * 3


def test_a_bulk_transition_with_nothing_to_move_writes_nothing(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    with app.app_context():
        moved = transition_all(db.session, PAYMENT, "timeout", Payment.cart_id == cart["cart_id"], actor="sweep",
                               now=NOW)
        db.session.commit()

        assert moved == []
        assert _history() == []


def test_a_bulk_transition_respects_its_limit(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    for _ in range(3):
        make_payment(app, client, user, cart["cart_id"])
    with app.app_context():
        before = len(_history())
        with unit_of_work() as uow:
            moved = transition_all(uow.session, PAYMENT, "timeout", Payment.cart_id == cart["cart_id"],
                                   actor="sweep", now=NOW, limit=2)
            uow.commit()

        assert len(moved) == 2
        assert len(_history()) - before == 2
        assert db.session.scalar(select(func.count()).where(Payment.status == "PENDING")) == 1


def test_a_recorded_refusal_is_kept_as_not_accepted_and_moves_nothing(app, client):
    user = register(client)
    payment = make_payment(app, client, user)["transaction_id"]
    with app.app_context():
        before = len(_history())
        with unit_of_work() as uow:
            record_refusal(uow.session, PAYMENT, payment, "succeed", from_state="CANCELLED", to_state="SUCCESS",
                           actor="x", now=NOW, detail={"provider_payment_id": "pay_r"})
            uow.commit()

        assert _history()[before:] == [("payment", payment, "CANCELLED", "SUCCESS", "succeed", "x", NOW, False)]
        assert _status(Payment, payment) == "PENDING"


def test_a_rolled_back_refusal_leaves_no_history(app, client):
    user = register(client)
    payment = make_payment(app, client, user)["transaction_id"]
    with app.app_context():
        before = _history()
        with unit_of_work() as uow:  # left without commit
            record_refusal(uow.session, PAYMENT, payment, "succeed", from_state="CANCELLED", to_state="SUCCESS",
                           actor="x", now=NOW)

        assert _history() == before
