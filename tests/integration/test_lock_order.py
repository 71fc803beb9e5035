"""Every multi-row write locks the cart first, so what committed while it waited is what it sees (PostgreSQL).

Each test holds a row lock on a connection of its own (or pauses a real capture
while it holds its locks), starts a request that must wait for it, changes the
rows the request depends on, and lets go. The outcome must be one that running
the two in some serial order would give (SPEC §1 Concurrency).
"""

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from persistence import carts
from persistence.sweep import sweep
from tests.builders import confirm, make_cart, make_payment, make_service, register, start_payment
from tests.conftest import requires_postgres
from tests.integration.support import history_rows, payment_row

pytestmark = requires_postgres

WAIT_SECONDS = 20


class Background:
    """A call run in a thread of its own; `result()` waits for it and re-raises what it raised."""

    def __init__(self, call: Callable[[], object]):
        self._outcome: dict = {}
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call) -> None:
        try:
            self._outcome["value"] = call()
        except BaseException as exc:  # handed to the test's thread
            self._outcome["error"] = exc

    def result(self):
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "the request never finished"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


@pytest.fixture
def database(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@contextmanager
def holding(engine, sql: str, **params):
    """A transaction of its own that runs `sql` (taking its locks) and commits on leaving."""
    with engine.connect() as connection:
        with connection.begin():
            connection.execute(text(sql), params)
            yield connection


def wait_until_waiting_for_locks(engine, count: int = 1) -> None:
    """Until `count` other sessions of this database wait for a lock: the requests under test are blocked."""
    deadline = time.monotonic() + WAIT_SECONDS
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))
            connection.rollback()
            if waiting >= count:
                return
            time.sleep(0.01)
    raise AssertionError(f"fewer than {count} requests ever waited for a lock")


def lock_cart_sql() -> str:
    return "SELECT id FROM carts WHERE id = :cart_id FOR UPDATE"


def test_a_capture_supersedes_a_sibling_payment_committed_while_it_waited_for_the_cart(app, client, database):
    user = register(client)
    cart = make_cart(app, client, user)
    first = make_payment(app, client, user, cart["cart_id"])
    with holding(database, lock_cart_sql(), cart_id=cart["cart_id"]) as holder:
        captured = Background(lambda: confirm(app, app.test_client(), user, first))
        wait_until_waiting_for_locks(database)
        # A sibling payment recorded and committed while the capture waits for the cart lock.
        holder.execute(text(
            "INSERT INTO payments (transaction_id, cart_id, user_id, status, amount, currency, provider_order_id, "
            "created_at, updated_at) SELECT 'TXNSIBLING00001', cart_id, user_id, 'PENDING', amount, currency, "
            "'order_sibling_1', created_at, updated_at FROM payments WHERE transaction_id = :txn"),
            {"txn": first["transaction_id"]})

    assert captured.result().status_code == 200
    assert payment_row(app, "TXNSIBLING00001").status == "CANCELLED"
    assert history_rows(app, "payment", "TXNSIBLING00001") == [
        ("PENDING", "CANCELLED", "supersede", f"user:{user['user_id']}", True)]


def test_a_cart_edited_while_a_capture_waits_is_refused_and_the_booking_holds_what_was_paid(app, client, database):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    other_service = make_service(app, client)
    with holding(database, lock_cart_sql(), cart_id=cart["cart_id"]):
        captured = Background(lambda: confirm(app, app.test_client(), user, payment))
        wait_until_waiting_for_locks(database, 1)
        edited = Background(lambda: app.test_client().post(
            f"/api/cart/carts/{cart['cart_id']}/items/", headers=user["headers"],
            json={"service_id": other_service["service_id"], "quantity": 1}))
        wait_until_waiting_for_locks(database, 2)

    capture, edit = captured.result(), edited.result()
    assert capture.status_code == 200
    assert edit.status_code == 409
    assert edit.json["reason"] in ("cart_not_active", "cart_locked_by_payment")
    assert [i["service_id"] for i in capture.json["booking"]["items"]] == [i["service_id"] for i in cart["items"]]
    assert capture.json["booking"]["total"] == payment["amount"]
    assert client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"]).json["items"] == cart["items"]


def test_a_delete_and_a_payment_start_of_one_cart_never_both_succeed(app, client, database):
    user = register(client)
    cart = make_cart(app, client, user)
    with holding(database, lock_cart_sql(), cart_id=cart["cart_id"]):
        started = Background(lambda: start_payment(app.test_client(), user, cart["cart_id"]))
        wait_until_waiting_for_locks(database, 1)
        deleted = Background(lambda: app.test_client().delete(f"/api/cart/carts/{cart['cart_id']}/",
                                                              headers=user["headers"]))
        wait_until_waiting_for_locks(database, 2)

    start, delete = started.result(), deleted.result()
    serial_orders = {
        "payment first": (start.status_code, delete.status_code) == (201, 409)
        and delete.json["reason"] == "pending_payment_wait",
        "delete first": (start.status_code, delete.status_code) == (409, 200)
        and start.json["reason"] == "cart_not_active",
    }
    assert sum(serial_orders.values()) == 1, (start.json, delete.json)
    cart_now = client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"])
    if serial_orders["delete first"]:
        assert cart_now.status_code == 200 and cart_now.json["status"] == "DELETED"
    else:
        assert cart_now.json["status"] == "ACTIVE"


class PausedCapture:
    """Once armed, the next capture stops after its writes, before its commit, until `go` is set."""

    def __init__(self):
        self.armed, self.inside, self.go = threading.Event(), threading.Event(), threading.Event()


@pytest.fixture
def paused(monkeypatch):
    pause = PausedCapture()
    items_of = carts.items_of

    def pausing_items_of(cart_ids):
        if pause.armed.is_set() and not pause.inside.is_set():  # a capture reads its items after every write
            pause.inside.set()
            assert pause.go.wait(WAIT_SECONDS)
        return items_of(cart_ids)

    monkeypatch.setattr(carts, "items_of", pausing_items_of)
    return pause


def test_the_sweep_passes_over_a_payment_whose_capture_is_running_and_never_cancels_it(app, client, clock, paused):
    user = register(client)
    payment = make_payment(app, client, user)
    clock.advance(minutes=45)  # stale by now, but its capture has begun
    paused.armed.set()
    captured = Background(lambda: confirm(app, app.test_client(), user, payment))
    assert paused.inside.wait(WAIT_SECONDS)

    started = time.monotonic()
    with app.app_context():
        result = sweep(now=clock(), timeout_minutes=30)
    took = time.monotonic() - started
    paused.go.set()

    assert result.cancelled == [] and took < 5  # passed over, never waited
    assert captured.result().status_code == 200
    assert payment_row(app, payment["transaction_id"]).status == "SUCCESS"
    assert [h[2] for h in history_rows(app, "payment", payment["transaction_id"])] == ["submit", "succeed"]


def test_a_delete_that_arrives_during_a_capture_waits_for_it_and_finds_the_cart_converted(
        app, client, clock, database, paused):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=45)  # the per-cart sweep of DELETE would time it out, were it not being captured
    paused.armed.set()
    captured = Background(lambda: confirm(app, app.test_client(), user, payment))
    assert paused.inside.wait(WAIT_SECONDS)
    deleted = Background(lambda: app.test_client().delete(f"/api/cart/carts/{cart['cart_id']}/",
                                                          headers=user["headers"]))
    wait_until_waiting_for_locks(database, 1)
    paused.go.set()

    assert captured.result().status_code == 200
    delete = deleted.result()
    assert delete.status_code == 409 and delete.json["reason"] == "cart_converted"
    assert payment_row(app, payment["transaction_id"]).status == "SUCCESS"
