"""Idempotency-Key on POST /api/payments/: every answer replayed, no waiting, 24 hours (SPEC §3 Payments).

The simpler cases (a 201 and a 502 replayed, another body refused, keys per
user, a refused cart not using up its key) are in test_payments.py.
"""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from persistence import idempotency
from persistence.db import db
from persistence.models import IdempotencyKey, Payment
from persistence.sweep import sweep
from tests.builders import make_cart, register, start_payment
from tests.conftest import requires_postgres
from tests.integration.support import FailingGateway, assert_json_error, count
from web.config import DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET
from web.gateway import OfflineGateway

WAIT_SECONDS = 30


@pytest.fixture
def app_config() -> dict:
    """Keys are kept 24 hours and these tests live through that day: the customer's token lives a week.

    A token's own day is tests/integration/test_token_expiry_and_logout.py's business.
    """
    return {"TOKEN_TTL_MINUTES": 7 * 24 * 60}


class GatewayThatFirstCalls(OfflineGateway):
    """The offline gateway that, while it creates an order, first calls `during(transaction_id)`."""

    def __init__(self, during):
        super().__init__(DEV_GATEWAY_SECRET, DEV_WEBHOOK_SECRET)
        self.during = during
        self.attempts = 0

    def create_order(self, *, amount, currency, receipt: str) -> str:
        self.attempts += 1
        self.during(receipt)
        return super().create_order(amount=amount, currency=currency, receipt=receipt)


def _with_gateway(make_app, gateway):
    return make_app(GATEWAY=gateway).test_client()


def _in_its_own_thread(app, work) -> None:
    """Run `work` as another worker would: in its own thread, app context and database session."""
    errors = []

    def run():
        try:
            with app.app_context():
                work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive() and not errors, errors


def _forget_answer(app, key: str) -> None:
    """As if the request that claimed `key` had died after recording its payment, before keeping its answer."""
    with app.app_context():
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == key)
                           .values(response_status=None, response_body=None))
        db.session.commit()


# --- every answer given once the payment is recorded is kept ---------------------------------------------


@pytest.mark.parametrize(("gateway", "status"), [(lambda: GatewayThatFirstCalls(lambda _txn: None), 201),
                                                  (FailingGateway, 502)], ids=["created", "gateway_failed"])
def test_a_first_answer_is_replayed_byte_for_byte_without_asking_the_gateway_again(app, client, make_app, gateway,
                                                                                    status):
    user = register(client)
    cart = make_cart(app, client, user)
    gateway = gateway()
    gateway_client = _with_gateway(make_app, gateway)
    first = start_payment(gateway_client, user, cart["cart_id"], key="k-first")

    again = start_payment(gateway_client, user, cart["cart_id"], key="k-first")

    assert (first.status_code, again.status_code) == (status, status)
    assert again.get_data() == first.get_data()
    assert gateway.attempts == 1
    assert count(app, Payment) == 1


def test_a_409_after_the_payment_was_recorded_is_kept_and_replayed_identically(app, client, make_app):
    user = register(client)
    cart = make_cart(app, client, user)

    def customer_cancels(transaction_id):  # from another tab, while the gateway creates the order
        cancelled = client.post(f"/api/payments/{transaction_id}/cancel/", headers=user["headers"])
        assert cancelled.status_code == 200, cancelled.json

    racing_client = _with_gateway(make_app, GatewayThatFirstCalls(customer_cancels))
    first = start_payment(racing_client, user, cart["cart_id"], key="k-409")

    again = start_payment(client, user, cart["cart_id"], key="k-409")

    assert_json_error(first, 409, reason="payment_not_open")
    assert (again.status_code, again.get_data()) == (409, first.get_data())
    assert count(app, Payment) == 1
    [payment] = _payments(app)
    assert payment.status == "CANCELLED"


def test_a_409_after_the_payment_timed_out_is_replayed_after_the_abandonment_threshold_too(app, client, make_app,
                                                                                        clock):
    user = register(client)
    cart = make_cart(app, client, user)

    def payment_times_out(_transaction_id):  # the gateway is slow; the scheduler's sweep runs meanwhile
        clock.advance(minutes=31)
        _in_its_own_thread(app, lambda: sweep(now=clock(), timeout_minutes=30, actor="test"))

    racing_client = _with_gateway(make_app, GatewayThatFirstCalls(payment_times_out))
    first = start_payment(racing_client, user, cart["cart_id"], key="k-timeout")
    clock.advance(minutes=10)

    again = start_payment(client, user, cart["cart_id"], key="k-timeout")

    assert_json_error(first, 409, reason="payment_not_open")
    assert (again.status_code, again.get_data()) == (409, first.get_data())
    assert count(app, Payment) == 1
    assert _payments(app)[0].status != "PENDING"


# --- the same key with another body ---------------------------------------------------------------------


def test_the_same_key_with_another_body_is_refused_even_while_the_first_request_runs(app, client, make_app):
    user = register(client)
    cart, other_cart = make_cart(app, client, user), make_cart(app, client, user)
    during = {}

    def other_body_meanwhile(_txn):
        during["response"] = start_payment(client, user, other_cart["cart_id"], key="k-reused")

    first = start_payment(_with_gateway(make_app, GatewayThatFirstCalls(other_body_meanwhile)), user,
                          cart["cart_id"], key="k-reused")
    after = start_payment(client, user, other_cart["cart_id"], key="k-reused")

    assert first.status_code == 201
    assert_json_error(during["response"], 409, reason="idempotency_key_reused")
    assert_json_error(after, 409, reason="idempotency_key_reused")
    assert count(app, Payment) == 1


# --- while the first request runs -----------------------------------------------------------------------


def test_a_request_while_the_first_with_its_key_runs_is_answered_at_once_to_retry_in_a_second(app, client,
                                                                                             make_app):
    user = register(client)
    cart = make_cart(app, client, user)
    during = {}

    def second_request_meanwhile(_txn):
        started = time.monotonic()
        during["response"] = start_payment(client, user, cart["cart_id"], key="k-busy")
        during["elapsed"] = time.monotonic() - started

    first = start_payment(_with_gateway(make_app, GatewayThatFirstCalls(second_request_meanwhile)), user,
                          cart["cart_id"], key="k-busy")
    after = start_payment(client, user, cart["cart_id"], key="k-busy")

    assert_json_error(during["response"], 409, reason="idempotency_key_in_progress")
    assert during["response"].headers["Retry-After"] == "1"
    assert during["elapsed"] < 0.5
    assert first.status_code == 201
    assert (after.status_code, after.get_data()) == (201, first.get_data())
    assert count(app, Payment) == 1


def test_a_key_left_unanswered_is_in_progress_for_two_minutes_then_answered_from_its_payment(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    first = start_payment(client, user, cart["cart_id"], key="k-died")
    _forget_answer(app, "k-died")

    clock.advance(minutes=1, seconds=59)
    still_running = start_payment(client, user, cart["cart_id"], key="k-died")
    clock.advance(seconds=1)
    recovered = start_payment(client, user, cart["cart_id"], key="k-died")
    clock.advance(hours=1)
    later = start_payment(client, user, cart["cart_id"], key="k-died")

    assert_json_error(still_running, 409, reason="idempotency_key_in_progress")
    assert recovered.status_code == 201
    assert recovered.json["transaction_id"] == first.json["transaction_id"]
    assert (later.status_code, later.get_data()) == (201, recovered.get_data())
    assert count(app, Payment) == 1


# --- keys are kept 24 hours -----------------------------------------------------------------------------


def test_a_key_replays_until_24_hours_after_its_first_use_and_then_starts_a_new_payment(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    claimed_at = clock()
    first = start_payment(client, user, cart["cart_id"], key="k-day")

    clock.set(claimed_at + timedelta(hours=24) - timedelta(milliseconds=1))
    last_replay = start_payment(client, user, cart["cart_id"], key="k-day")
    clock.set(claimed_at + timedelta(hours=24))
    renewed = start_payment(client, user, cart["cart_id"], key="k-day")
    clock.advance(hours=23)
    replay_of_the_new_one = start_payment(client, user, cart["cart_id"], key="k-day")

    assert (last_replay.status_code, last_replay.get_data()) == (201, first.get_data())
    assert renewed.status_code == 201
    assert renewed.json["transaction_id"] != first.json["transaction_id"]
    assert renewed.json["created_at"] == "2030-01-16T12:00:00.000Z"
    assert (replay_of_the_new_one.status_code, replay_of_the_new_one.get_data()) == (201, renewed.get_data())
    assert count(app, Payment) == 2
    assert count(app, IdempotencyKey) == 1


def test_an_expired_key_is_as_good_as_new_whatever_the_body(app, client, clock):
    user = register(client)
    first_cart, second_cart = make_cart(app, client, user), make_cart(app, client, user)
    start_payment(client, user, first_cart["cart_id"], key="k-reuse-tomorrow")
    clock.advance(hours=24)

    response = start_payment(client, user, second_cart["cart_id"], key="k-reuse-tomorrow")

    assert response.status_code == 201
    assert response.json["cart_id"] == second_cart["cart_id"]


def test_an_expired_key_whose_new_request_refuses_the_cart_is_left_as_it_was(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    empty_cart = make_cart(app, client, user, items=0)
    start_payment(client, user, cart["cart_id"], key="k-old")
    clock.advance(hours=25)
    with app.app_context():
        before = idempotency.find(user["user_id"], "k-old")
        before = (before.transaction_id, before.created_at, before.response_status)

    refused = start_payment(client, user, empty_cart["cart_id"], key="k-old")

    assert_json_error(refused, 409, reason="cart_empty")
    with app.app_context():
        after = idempotency.find(user["user_id"], "k-old")
        assert (after.transaction_id, after.created_at, after.response_status) == before


# --- concurrent requests (PostgreSQL: SQLite lets one writer in at a time) ----------------------------------


def _at_once(app, monkeypatch, calls: int, request) -> list:
    """Run `request(client)` in `calls` threads, each with its own client, all past reading the key before any
    goes on to claim it."""
    read_the_key = threading.Barrier(calls, timeout=WAIT_SECONDS)
    mine = threading.local()
    original_find = idempotency.find

    def find_then_wait_for_the_others(user_id, key):
        seen = original_find(user_id, key)
        if not getattr(mine, "waited", False):
            mine.waited = True
            read_the_key.wait()
        return seen

    monkeypatch.setattr(idempotency, "find", find_then_wait_for_the_others)
    answers, errors = [None] * calls, []

    def run(n):
        try:
            answers[n] = request(app.test_client())
        except BaseException as exc:  # reported below, never lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert not errors, errors
    assert all(answer is not None for answer in answers)
    return answers


def _assert_one_payment_answered(answers, created_before: set[str], app) -> dict:
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    assert {a.json["reason"] for a in answers if a.status_code == 409} <= {"idempotency_key_in_progress"}
    created = {a.json["transaction_id"] for a in answers if a.status_code == 201}
    new = {p.transaction_id for p in _payments(app)} - created_before
    assert len(new) == 1 and created == new, (created, new)
    return next(a.json for a in answers if a.status_code == 201)


@requires_postgres
def test_concurrent_first_requests_with_one_key_make_one_payment(app, client, monkeypatch):
    user = register(client)
    cart = make_cart(app, client, user)

    answers = _at_once(app, monkeypatch, 4, lambda c: start_payment(c, user, cart["cart_id"], key="k-race"))

    payment = _assert_one_payment_answered(answers, set(), app)
    monkeypatch.undo()
    assert start_payment(client, user, cart["cart_id"], key="k-race").json == payment


@requires_postgres
def test_concurrent_takeovers_of_an_expired_key_make_one_payment(app, client, clock, monkeypatch):
    user = register(client)
    cart = make_cart(app, client, user)
    old = start_payment(client, user, cart["cart_id"], key="k-race-again").json
    clock.advance(hours=24)

    answers = _at_once(app, monkeypatch, 4, lambda c: start_payment(c, user, cart["cart_id"], key="k-race-again"))

    payment = _assert_one_payment_answered(answers, {old["transaction_id"]}, app)
    monkeypatch.undo()
    assert start_payment(client, user, cart["cart_id"], key="k-race-again").json == payment
    assert count(app, IdempotencyKey) == 1


def _payments(app) -> list[Payment]:
    with app.app_context():
        return list(db.session.scalars(db.select(Payment)))
