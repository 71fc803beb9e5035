"""/metrics (SPEC §3 Operations): Prometheus text with requests, transitions, open payments, sweeps."""

from prometheus_client.parser import text_string_to_metric_families

from tests.builders import confirm, make_cart, make_payment, register, send_webhook, start_payment
from web import metrics


def scrape(client) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from one GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_latency_is_counted_by_url_rule_method_and_status_not_by_raw_path(client):
    customer = register(client)
    before = scrape(client)
    for _ in range(3):
        client.get("/api/cart/carts/00000000-0000-4000-8000-000000000000/", headers=customer["headers"])
    client.get("/no/such/path/at/all")

    after = scrape(client)
    rule = "/api/cart/carts/<cart_id>/"
    count = "http_request_duration_seconds_count"
    assert value(after, count, endpoint=rule, method="GET", status="404") - \
        value(before, count, endpoint=rule, method="GET", status="404") == 3
    assert value(after, count, endpoint="<unmatched>", method="GET", status="404") - \
        value(before, count, endpoint="<unmatched>", method="GET", status="404") == 1
    assert not any("00000000-0000" in dict(labels).get("endpoint", "") for _, labels in after)
    assert value(after, "http_request_duration_seconds_bucket", endpoint=rule, method="GET", status="404",
                 le="+Inf") >= 3


def test_transitions_are_counted_by_entity_trigger_and_outcome(app, client):
    customer = register(client)
    payment = make_payment(app, client, customer)
    before = scrape(client)
    assert confirm(app, client, customer, payment).status_code == 200
    cancel = client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=customer["headers"])
    assert cancel.status_code == 409

    after = scrape(client)
    name = "state_transitions_total"

    def delta(**labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(entity="payment", trigger="succeed", outcome="accepted") == 1
    assert delta(entity="cart", trigger="convert", outcome="accepted") == 1
    assert delta(entity="payment", trigger="cancel", outcome="rejected") == 1


def test_a_late_capture_is_counted_as_refused_and_as_a_late_capture(app, client):
    customer = register(client)
    cart = make_cart(app, client, customer)
    first = make_payment(app, client, customer, cart["cart_id"])
    second = start_payment(client, customer, cart["cart_id"]).json
    assert confirm(app, client, customer, first).status_code == 200  # supersedes the second
    before = scrape(client)

    event = {"event_id": "evt_late_1", "event": "payment.captured",
             "provider_order_id": second["provider_order_id"], "provider_payment_id": "pay_late_1"}
    assert send_webhook(app, client, event).json["outcome"] == "refused"

    after = scrape(client)
    assert value(after, "payment_late_captures_total") - value(before, "payment_late_captures_total") == 1
    labels = dict(entity="payment", trigger="succeed", outcome="refused")
    assert value(after, "state_transitions_total", **labels) - value(before, "state_transitions_total", **labels) == 1


def test_open_payments_are_gauged_by_state_at_scrape_time_with_the_stale_ones_apart(app, client, clock):
    customer = register(client)
    make_payment(app, client, customer)
    clock.advance(minutes=31)  # older than the 30-minute timeout
    make_payment(app, client, customer)

    samples = scrape(client)

    assert value(samples, "payments_open", state="PENDING") == 2
    assert value(samples, "payments_open", state="INITIATED") == 0
    assert value(samples, "payments_open_stale", state="PENDING") == 1
    assert value(samples, "payments_open_oldest_age_seconds") == 31 * 60
    assert value(samples, "metrics_database_up") == 1


def test_the_sweep_caller_records_runs_cancellations_duration_and_failures(client):
    before = scrape(client)
    metrics.record_sweep(3, 0.2)
    metrics.record_sweep(0, 0.01)
    metrics.record_sweep(0, 1.5, failed=True)

    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("payment_sweep_runs_total", outcome="ok") == 2
    assert delta("payment_sweep_runs_total", outcome="failed") == 1
    assert delta("payment_sweep_cancelled_total") == 3
    assert delta("payment_sweep_duration_seconds_count") == 3
    assert value(after, "payment_sweep_last_success_timestamp_seconds") > 0


def test_metrics_still_answer_when_the_database_is_down(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=2")
    samples = scrape(app.test_client())
    assert value(samples, "metrics_database_up") == 0
    assert not any(name == "payments_open" for name, _ in samples)
