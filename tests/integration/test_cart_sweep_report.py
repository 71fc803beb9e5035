"""The cart endpoints' sweeps of one cart are sweep runs too (SPEC §5): one `payments.sweep` event with the
cart's id once committed, and their cancellations counted; the global sweep's runs and last success are not."""

import structlog
from structlog.testing import capture_logs

from tests.builders import make_cart, make_payment, register
from tests.integration.support import make_booking
from tests.integration.test_operations_metrics import scrape, value

GLOBAL_RUN_METRICS = ("payment_sweep_runs_total", "payment_sweep_duration_seconds_count",
                      "payment_sweep_last_success_timestamp_seconds")


def _sweep_events(call):
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        response = call()
    return response, [e for e in captured if e["event"] == "payments.sweep"]


def _run_metrics(samples):
    return {name: value(samples, name, **({"outcome": "ok"} if name.endswith("runs_total") else {}))
            for name in GLOBAL_RUN_METRICS}


def _cart_with_payments(app, client, clock, stale: int, fresh: int):
    user = register(client)
    cart = make_cart(app, client, user)
    for _ in range(stale):
        make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=31)
    for _ in range(fresh):
        make_payment(app, client, user, cart["cart_id"])
    return user, cart


def test_a_delete_that_cancels_stale_payments_logs_its_sweep_of_the_cart_and_counts_them(app, client, clock):
    user, cart = _cart_with_payments(app, client, clock, stale=2, fresh=0)
    before = scrape(client)

    response, events = _sweep_events(lambda: client.delete(f"/api/cart/carts/{cart['cart_id']}/",
                                                           headers=user["headers"]))

    assert response.status_code == 200
    [event] = events
    assert (event["cart_id"], event["cancelled"], event["carts"], event["batches"]) == (cart["cart_id"], 2, 1, 1)
    assert {"duration_ms", "longest_batch_ms"} <= set(event)
    after = scrape(client)
    assert value(after, "payment_sweep_cancelled_total") - value(before, "payment_sweep_cancelled_total") == 2
    assert _run_metrics(after) == _run_metrics(before)  # not a run of the global sweep


def test_a_delete_blocked_by_a_fresh_payment_still_logs_the_stale_ones_it_cancelled(app, client, clock):
    user, cart = _cart_with_payments(app, client, clock, stale=1, fresh=1)

    response, events = _sweep_events(lambda: client.delete(f"/api/cart/carts/{cart['cart_id']}/",
                                                           headers=user["headers"]))

    assert response.status_code == 409
    assert [(e["cart_id"], e["cancelled"]) for e in events] == [(cart["cart_id"], 1)]


def test_cleanup_old_payments_logs_its_sweep_of_the_cart(app, client, clock):
    user, cart = _cart_with_payments(app, client, clock, stale=1, fresh=1)

    response, events = _sweep_events(lambda: client.post(f"/api/cart/carts/{cart['cart_id']}/cleanup_old_payments/",
                                                         headers=user["headers"]))

    assert response.status_code == 200
    assert [(e["cart_id"], e["cancelled"]) for e in events] == [(cart["cart_id"], 1)]


def test_a_delete_refused_before_any_sweep_logs_none(app, client):
    booking = make_booking(app, client)

    response, events = _sweep_events(lambda: client.delete(f"/api/cart/carts/{booking['cart']['cart_id']}/",
                                                           headers=booking["user"]["headers"]))

    assert response.status_code == 409
    assert events == []
