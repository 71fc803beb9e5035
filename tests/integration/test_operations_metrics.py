"""/metrics (SPEC §3 Operations): Prometheus text with requests, transitions, open payments, sweeps, refunds."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import scheduler
from tests.alert_rules import alerting_rules, selectors
from tests.builders import confirm, make_cart, make_payment, register, send_webhook, start_payment
from tests.gateways import ScriptedGateway
from web import metrics

REFUND_STATES = ("REQUESTED", "SUCCEEDED", "FAILED")


def scrape(client) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from one GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def refunds_by_state(samples: dict) -> dict[str, float]:
    """refunds{state}; every state must be there, 0 included."""
    return {state: samples[("refunds", (("state", state),))] for state in REFUND_STATES}


def late_capture(app, client, user, provider_payment_id: str) -> dict:
    """A confirm of a payment its owner cancelled: refused, and a refund of that capture REQUESTED."""
    payment = make_payment(app, client, user)
    assert client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"]).status_code == 200
    assert confirm(app, client, user, payment, provider_payment_id=provider_payment_id).status_code == 409
    return payment


def send_refunds(app) -> str:
    result = app.test_cli_runner().invoke(args=["send-refunds"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


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
    assert not any(name in ("payments_open", "refunds") for name, _ in samples)
    assert value(samples, "scheduler_job_interval_seconds", scheduler_job="refund-job") == 30


def test_every_refund_state_is_gauged_at_zero_before_the_first_refund(client):
    samples = scrape(client)

    assert refunds_by_state(samples) == {"REQUESTED": 0, "SUCCEEDED": 0, "FAILED": 0}
    assert value(samples, "refunds_requested_oldest_age_seconds") == 0


def test_late_captures_are_gauged_as_requested_refunds_with_the_age_of_the_oldest(app, client, clock):
    customer = register(client)
    before = scrape(client)
    late_capture(app, client, customer, "pay_late_1")
    clock.advance(minutes=10)
    late_capture(app, client, customer, "pay_late_2")
    clock.advance(minutes=5)

    samples = scrape(client)

    assert refunds_by_state(samples) == {"REQUESTED": 2, "SUCCEEDED": 0, "FAILED": 0}
    assert value(samples, "refunds_requested_oldest_age_seconds") == 15 * 60
    assert value(samples, "payment_late_captures_total") - value(before, "payment_late_captures_total") == 2


def test_after_the_refund_job_the_refund_is_gauged_succeeded_and_the_run_is_counted(app, client, clock):
    customer = register(client)
    late_capture(app, client, customer, "pay_late_1")
    clock.advance(hours=2)
    before = scrape(client)
    started = time.time()

    assert send_refunds(app) == "Sent 1 refunds: 1 succeeded, 0 failed, 0 to retry"

    after = scrape(client)
    assert refunds_by_state(after) == {"REQUESTED": 0, "SUCCEEDED": 1, "FAILED": 0}
    assert value(after, "refunds_requested_oldest_age_seconds") == 0
    for name, labels in [("refund_job_runs_total", {"outcome": "ok"}),
                         ("refund_attempts_total", {"outcome": "succeeded"})]:
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    assert value(after, "refund_job_last_success_timestamp_seconds") >= started


@pytest.fixture
def refusing_app(app, make_app):
    """An app on the emptied test database whose gateway refuses the next refund for good."""
    gateway = ScriptedGateway()
    gateway.fail_next("refund", "permanent")
    return make_app(GATEWAY=gateway)


def test_a_refund_the_gateway_refuses_is_gauged_failed(refusing_app):
    client = refusing_app.test_client()
    late_capture(refusing_app, client, register(client), "pay_late_1")

    assert send_refunds(refusing_app) == "Sent 1 refunds: 0 succeeded, 1 failed, 0 to retry"

    assert refunds_by_state(scrape(client)) == {"REQUESTED": 0, "SUCCEEDED": 0, "FAILED": 1}


def test_the_configured_job_intervals_are_exposed_under_the_schedulers_job_ids(make_app):
    app = make_app(SWEEP_INTERVAL_SECONDS=90, REFUND_INTERVAL_SECONDS=12.5)

    samples = scrape(app.test_client())

    assert {job: value(samples, "scheduler_job_interval_seconds", scheduler_job=job)
            for job in (scheduler.JOB_ID, scheduler.REFUND_JOB_ID)} == {scheduler.JOB_ID: 90,
                                                                       scheduler.REFUND_JOB_ID: 12.5}


def test_every_series_the_alerting_rules_select_is_one_metrics_exposes(app, client):
    """The rules in deploy/prometheus/alerts.yml cannot drift from the names and label values of the code."""
    late_capture(app, client, register(client), "pay_late_1")
    send_refunds(app)
    exposed = scrape(client)

    selected = [(rule["alert"], name, labels) for rule in alerting_rules() for name, labels in selectors(rule["expr"])]

    assert {rule["alert"] for rule in alerting_rules()} == {alert for alert, _, _ in selected}
    missing = [(alert, name, labels) for alert, name, labels in selected
               if not any(exposed_name == name and labels.items() <= dict(exposed_labels).items()
                          for exposed_name, exposed_labels in exposed)]
    assert missing == []
