"""Property tests through the API: after any sequence of operations on a cart and its payments, every
answer is the one a model of SPEC §1 predicts, and each entity's history replays to its current state."""

import itertools
import uuid

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from machines import CART_MACHINE, PAYMENT_MACHINE
from persistence.sweep import sweep
from tests.builders import confirm, future_date, make_service, register, send_webhook, start_payment

OPEN = {"INITIATED", "PENDING"}
PIDS = ["pay_a", "pay_b"]

payment_index = st.integers(min_value=0, max_value=3)
event_index = st.integers(min_value=0, max_value=2)  # a small pool, so event ids repeat
operations = st.lists(st.one_of(
    st.just(("pay",)),
    st.tuples(st.just("confirm"), payment_index, st.sampled_from(PIDS)),
    st.tuples(st.just("bad_confirm"), payment_index),
    st.tuples(st.just("cancel"), payment_index),
    st.tuples(st.just("captured"), payment_index, st.sampled_from(PIDS), event_index),
    st.tuples(st.just("failed"), payment_index, event_index),
    st.just(("add_item",)),
    st.just(("age",)),      # the clock moves on by the timeout: every payment made so far is stale
    st.just(("timeout",)),  # ... and the sweep then fires `timeout` on every stale open payment
    st.just(("delete",)),   # the cart deletion endpoint: times out stale payments, then `delete` or a 409
), min_size=1, max_size=14)

_runs = itertools.count()


class Model:
    """What SPEC §1 says the cart and its payments are after each operation."""

    def __init__(self):
        self.cart = "ACTIVE"
        self.payments: list[dict] = []  # {"txn", "order", "state", "pid", "stale"}
        self.seen_events: set[str] = set()

    def capture(self, payment: dict, pid: str) -> str:
        """captured / already_captured / refused, moving the model as the service must."""
        if payment["state"] == "PENDING":
            for other in self.payments:
                if other is not payment and other["state"] in OPEN:
                    other["state"] = "CANCELLED"
            payment.update(state="SUCCESS", pid=pid)
            self.cart = "CONVERTED"
            return "captured"
        if payment["state"] == "SUCCESS" and payment["pid"] == pid:
            return "already_captured"
        return "refused"

    def time_out_stale(self) -> set[str]:
        """The open payments that are stale, moved to CANCELLED; their transaction ids."""
        stale = {p["txn"] for p in self.payments if p["state"] in OPEN and p["stale"]}
        for payment in self.payments:
            if payment["txn"] in stale:
                payment["state"] = "CANCELLED"
        return stale


def replayed(machine, history: list[dict]) -> str:
    """Replay the accepted rows from the initial state, checking each is an allowed move from where it stood."""
    state = machine.initial.value
    for row in history:
        if not row["accepted"]:
            # A refused capture is recorded from the state the entity was in, and changes nothing.
            assert (row["trigger"], row["from"], row["to"]) == ("succeed", state, "SUCCESS"), row
            assert state != "PENDING", row
            continue
        assert row["from"] == state, (row, history)
        assert machine.decide(row["trigger"], row["from"], verified=True, fresh_open_payments=0).value == row["to"]
        state = row["to"]
    return state


def check(response, status: int, reason: str | None = None):
    assert response.status_code == status, (response.status_code, response.json)
    if reason is not None:
        assert response.json["reason"] == reason, response.json


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
# Always tried, whatever is drawn: the sweep's `timeout` and then a late capture; deletion timing out a
# stale payment while a fresh one blocks it, then deleting; deleting a converted cart.
@example(ops=[("pay",), ("pay",), ("timeout",), ("confirm", 0, "pay_a"), ("captured", 1, "pay_b", 0), ("delete",)])
@example(ops=[("pay",), ("age",), ("pay",), ("delete",), ("age",), ("delete",), ("pay",), ("delete",)])
@example(ops=[("pay",), ("confirm", 0, "pay_a"), ("delete",), ("timeout",)])
def test_any_sequence_of_operations_is_answered_as_the_spec_says_and_history_replays_to_the_state(
        app, client, clock, ops):
    service_id = app.config.setdefault("_replay_service", make_service(app, client))["service_id"]
    user = register(client)
    h = user["headers"]
    cart_id = client.post("/api/cart/carts/", headers=h,
                          json={"selected_date": future_date(app), "selected_time": "09:00"}).json["cart_id"]
    check(client.post(f"/api/cart/carts/{cart_id}/items/", headers=h, json={"service_id": service_id, "quantity": 1}),
          201)
    run = f"{next(_runs)}-{uuid.uuid4().hex[:8]}"
    timeout = app.config["PAYMENT_TIMEOUT_MINUTES"]
    model = Model()

    for op in ops:
        kind = op[0]
        payment = model.payments[op[1] % len(model.payments)] if len(op) > 1 and model.payments else None
        if kind == "pay":
            response = start_payment(client, user, cart_id)
            if model.cart == "ACTIVE":
                check(response, 201)
                model.payments.append({"txn": response.json["transaction_id"], "state": "PENDING", "pid": None,
                                       "order": response.json["provider_order_id"], "stale": False})
            else:
                check(response, 409, "cart_not_active")
        elif kind == "add_item":
            response = client.post(f"/api/cart/carts/{cart_id}/items/", headers=h,
                                   json={"service_id": service_id, "quantity": 1})
            if model.cart != "ACTIVE":
                check(response, 409, "cart_not_active")
            elif any(p["state"] in OPEN for p in model.payments):
                check(response, 409, "cart_locked_by_payment")
            else:
                check(response, 201)
        elif kind in ("age", "timeout"):
            clock.advance(minutes=timeout)
            for made in model.payments:
                made["stale"] = True
            if kind == "timeout":
                with app.app_context():  # the global sweep; earlier examples' carts may be in it too
                    swept = sweep(now=clock(), timeout_minutes=timeout)
                ours = {p["txn"] for p in model.payments}
                assert {p.transaction_id for p in swept.cancelled} & ours == model.time_out_stale()
        elif kind == "delete":
            response = client.delete(f"/api/cart/carts/{cart_id}/", headers=h)
            if model.cart == "CONVERTED":
                check(response, 409, "cart_converted")
                continue
            if model.cart == "DELETED":
                check(response, 409, "cart_not_active")
                continue
            timed_out = model.time_out_stale()
            if any(p["state"] in OPEN for p in model.payments):
                check(response, 409, "pending_payment_wait")
            else:
                check(response, 200)
                model.cart = "DELETED"
            cleanup = response.json["auto_cleanup"]
            assert (cleanup or {}).get("payments_cancelled", 0) == len(timed_out), (op, response.json)
        elif payment is None:
            continue
        elif kind == "confirm":
            as_json = {"transaction_id": payment["txn"], "provider_order_id": payment["order"]}
            response = confirm(app, client, user, as_json, provider_payment_id=op[2])
            outcome = model.capture(payment, op[2])
            if outcome == "refused":
                check(response, 409, "payment_not_pending")
            else:
                check(response, 200)
        elif kind == "bad_confirm":
            as_json = {"transaction_id": payment["txn"], "provider_order_id": payment["order"]}
            check(confirm(app, client, user, as_json, sig="0" * 64), 400, "invalid_signature")
        elif kind == "cancel":
            response = client.post(f"/api/payments/{payment['txn']}/cancel/", headers=h, json={})
            if payment["state"] in OPEN:
                check(response, 200)
                payment["state"] = "CANCELLED"
            else:
                check(response, 409, "payment_not_open")
        else:  # a gateway event
            event_id = f"evt-{run}-{op[-1]}"
            event = "payment.captured" if kind == "captured" else "payment.failed"
            pid = op[2] if kind == "captured" else "pay_failed"
            response = send_webhook(app, client, {"event_id": event_id, "event": event, "provider_order_id":
                                                  payment["order"], "provider_payment_id": pid})
            check(response, 200)
            if event_id in model.seen_events:
                expected = "duplicate"
            elif kind == "captured":
                expected = model.capture(payment, pid)
            elif payment["state"] in OPEN:
                payment["state"], expected = "FAILED", "failed"
            else:
                expected = "ignored"
            model.seen_events.add(event_id)
            assert response.json["outcome"] == expected, (op, response.json)

    cart = client.get(f"/api/cart/carts/{cart_id}/", headers=h).json
    assert cart["status"] == model.cart
    assert replayed(CART_MACHINE, client.get(f"/api/cart/carts/{cart_id}/history/", headers=h).json) == model.cart
    for payment in model.payments:
        current = client.get(f"/api/payments/{payment['txn']}/", headers=h).json
        assert current["status"] == payment["state"]
        history = client.get(f"/api/payments/{payment['txn']}/history/", headers=h).json
        assert replayed(PAYMENT_MACHINE, history) == payment["state"]
    bookings = client.get("/api/bookings/", headers=h).json
    assert [b["transaction_id"] for b in bookings] == [p["txn"] for p in model.payments if p["state"] == "SUCCESS"]
