"""`flask --app web cleanup-old-pending-payments [--dry-run] [--minutes N]` (SPEC §4, seed 001): the exact output.

stdout carries the report alone; the JSON log lines of the transitions go to stderr.
"""

import json

import pytest
from sqlalchemy import text

from persistence.db import db
from tests.builders import make_cart, make_payment, register
from tests.conftest import requires_postgres
from tests.integration.support import history_rows, payment_row, snapshot
from web.cleanup_cli import CLI_ACTOR


def _invoke(runner, *args):
    return runner.invoke(args=["cleanup-old-pending-payments", *args])


@pytest.fixture
def three_stale_in_two_carts(app, client, clock):
    """Cart A: payments 45 and 35 minutes old; cart B: one 120 minutes old and one fresh (10 minutes).

    The report lists them newest first, as the seed does (35, 45, 120 minutes).
    """
    user = register(client)
    cart_a = make_cart(app, client, user)
    cart_b = make_cart(app, client, user)
    oldest = make_payment(app, client, user, cart_b["cart_id"])      # 12:00 -> 120 min
    clock.advance(minutes=75)
    a_old = make_payment(app, client, user, cart_a["cart_id"])       # 13:15 -> 45 min
    clock.advance(minutes=10)
    a_newer = make_payment(app, client, user, cart_a["cart_id"])     # 13:25 -> 35 min
    clock.advance(minutes=25)
    b_fresh = make_payment(app, client, user, cart_b["cart_id"])     # 13:50 -> 10 min
    clock.advance(minutes=10, seconds=40)                            # now 14:00:40
    return {"a": cart_a["cart_id"], "b": cart_b["cart_id"], "oldest": oldest["transaction_id"],
            "a_old": a_old["transaction_id"], "a_newer": a_newer["transaction_id"],
            "b_fresh": b_fresh["transaction_id"]}


def test_the_command_prints_the_seed_format_and_cancels_the_old_payments(app, runner, three_stale_in_two_carts):
    s = three_stale_in_two_carts

    result = _invoke(runner)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Cleaning up pending payments older than 30 minutes...",
        "Found 3 old pending payments",
        f"  Payment {s['a_newer']}: 35 minutes old, Cart: {s['a']}",
        f"  Payment {s['a_old']}: 45 minutes old, Cart: {s['a']}",
        f"  Payment {s['oldest']}: 120 minutes old, Cart: {s['b']}",
        "Successfully cancelled 3 old pending payments affecting 2 carts",
        "",
        "Affected carts:",
        f"  Cart {s['a']}: Can delete: True",
        f"  Cart {s['b']}: Can delete: False",
        "",
        "Cleanup completed!",
    ]
    for txn in (s["oldest"], s["a_old"], s["a_newer"]):
        assert payment_row(app, txn).status == "CANCELLED"
        assert history_rows(app, "payment", txn)[-1] == ("PENDING", "CANCELLED", "timeout", CLI_ACTOR, True)
    assert payment_row(app, s["b_fresh"]).status == "PENDING"


def test_the_transition_log_lines_go_to_stderr_not_into_the_report(app, runner, three_stale_in_two_carts):
    s = three_stale_in_two_carts

    result = _invoke(runner)

    assert result.exit_code == 0, result.output
    assert not [line for line in result.stdout.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    timeouts = [e for e in events if e["event"] == "payment.transition"]
    assert sorted(e["transaction_id"] for e in timeouts) == sorted([s["oldest"], s["a_old"], s["a_newer"]])
    assert {(e["trigger"], e["actor"]) for e in timeouts} == {("timeout", CLI_ACTOR)}


def _logged_events(output: str, name: str) -> list[dict]:
    return [e for e in (json.loads(line) for line in output.splitlines() if line.startswith("{")) if e["event"] == name]


def test_a_run_logs_one_sweep_event_with_its_counts_to_stderr(app, runner, three_stale_in_two_carts):
    result = _invoke(runner)

    assert result.exit_code == 0, result.output
    [event] = _logged_events(result.stderr, "payments.sweep")
    assert (event["cancelled"], event["carts"], event["batches"], event["level"]) == (3, 2, 1, "info")
    assert all(isinstance(event[name], float) and event[name] >= 0 for name in ("longest_batch_ms", "duration_ms"))
    assert _logged_events(result.stdout, "payments.sweep") == []


def test_a_dry_run_sweeps_nothing_and_logs_no_sweep_event(app, runner, three_stale_in_two_carts):
    result = _invoke(runner, "--dry-run")

    assert result.exit_code == 0, result.output
    assert _logged_events(result.output, "payments.sweep") == []


def test_the_dry_run_lists_the_same_payments_and_changes_nothing(app, runner, three_stale_in_two_carts):
    s = three_stale_in_two_carts
    before = snapshot(app)

    result = _invoke(runner, "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Cleaning up pending payments older than 30 minutes...",
        "Found 3 old pending payments",
        f"  Payment {s['a_newer']}: 35 minutes old, Cart: {s['a']}",
        f"  Payment {s['a_old']}: 45 minutes old, Cart: {s['a']}",
        f"  Payment {s['oldest']}: 120 minutes old, Cart: {s['b']}",
        "Dry run: would cancel 3 old pending payments affecting 2 carts",
    ]
    assert snapshot(app) == before


def test_a_second_run_finds_nothing(app, runner, three_stale_in_two_carts):
    assert _invoke(runner).exit_code == 0
    before = snapshot(app)

    result = _invoke(runner)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Cleaning up pending payments older than 30 minutes...",
        "Found 0 old pending payments",
        "Successfully cancelled 0 old pending payments affecting 0 carts",
        "",
        "Affected carts:",
        "",
        "Cleanup completed!",
    ]
    assert snapshot(app) == before


def test_with_no_payments_at_all_the_dry_run_says_zero(app, runner):
    result = _invoke(runner, "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Cleaning up pending payments older than 30 minutes...",
        "Found 0 old pending payments",
        "Dry run: would cancel 0 old pending payments affecting 0 carts",
    ]


def test_minutes_sets_another_threshold(app, runner, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    twenty = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=10)
    ten = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=10)

    result = _invoke(runner, "--minutes", "15")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Cleaning up pending payments older than 15 minutes...",
        "Found 1 old pending payments",
        f"  Payment {twenty['transaction_id']}: 20 minutes old, Cart: {cart['cart_id']}",
        "Successfully cancelled 1 old pending payments affecting 1 carts",
        "",
        "Affected carts:",
        # deletability is judged by the configured timeout (30): the 10-minute payment still blocks
        f"  Cart {cart['cart_id']}: Can delete: False",
        "",
        "Cleanup completed!",
    ]
    assert payment_row(app, twenty["transaction_id"]).status == "CANCELLED"
    assert payment_row(app, ten["transaction_id"]).status == "PENDING"


def test_a_fractional_threshold_prints_as_written(app, runner, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    old = make_payment(app, client, user, cart["cart_id"])
    clock.advance(seconds=20)
    young = make_payment(app, client, user, cart["cart_id"])
    clock.advance(seconds=20)  # 40 s and 20 s old

    result = _invoke(runner, "--minutes", "0.5", "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Cleaning up pending payments older than 0.5 minutes...",
        "Found 1 old pending payments",
        f"  Payment {old['transaction_id']}: 0 minutes old, Cart: {cart['cart_id']}",
        "Dry run: would cancel 1 old pending payments affecting 1 carts",
    ]
    assert payment_row(app, young["transaction_id"]).status == "PENDING"


def test_the_default_threshold_is_the_configured_timeout(make_app, app, clock):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=45)
    client = configured.test_client()
    user = register(client)
    payment = make_payment(configured, client, user)
    clock.advance(minutes=44)

    before = _invoke(configured.test_cli_runner())
    clock.advance(minutes=1)
    at = _invoke(configured.test_cli_runner())

    assert before.stdout.splitlines()[:2] == ["Cleaning up pending payments older than 45 minutes...",
                                              "Found 0 old pending payments"]
    assert at.stdout.splitlines()[:3] == [
        "Cleaning up pending payments older than 45 minutes...",
        "Found 1 old pending payments",
        f"  Payment {payment['transaction_id']}: 45 minutes old, Cart: {payment['cart_id']}"]
    assert payment_row(configured, payment["transaction_id"]).status == "CANCELLED"


def test_the_largest_allowed_threshold_is_accepted(app, runner, three_stale_in_two_carts):
    before = snapshot(app)

    result = _invoke(runner, "--minutes", "52560000")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["Cleaning up pending payments older than 52560000 minutes...",
                                              "Found 0 old pending payments"]
    assert snapshot(app) == before


@pytest.mark.parametrize("value, complaint", [
    ("0", "must be a positive number of minutes, not '0'"),
    ("-1", "must be a positive number of minutes, not '-1'"),
    ("-0.5", "must be a positive number of minutes, not '-0.5'"),
    ("abc", "must be a positive number of minutes, not 'abc'"),
    ("", "must be a positive number of minutes, not ''"),
    ("nan", "must be a positive number of minutes, not 'nan'"),
    ("inf", "must be a positive number of minutes, not 'inf'"),
    ("-inf", "must be a positive number of minutes, not '-inf'"),
    ("sNaN", "must be a positive number of minutes, not 'sNaN'"),
    ("1e-400", "must be a positive number of minutes, not '1e-400'"),  # 0.0 as a float
    ("1e400", "must be at most 52560000 minutes"),
    ("99999999999", "must be at most 52560000 minutes"),
    ("52560000.5", "must be at most 52560000 minutes"),
])
def test_a_bad_minutes_value_is_a_usage_error_that_changes_nothing(app, runner, three_stale_in_two_carts,
                                                                     value, complaint):
    before = snapshot(app)

    result = _invoke(runner, "--minutes", value)

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--minutes'" in result.output
    assert complaint in result.output
    assert "Traceback" not in result.output
    assert "Cleaning up" not in result.output
    assert snapshot(app) == before


def test_a_bad_minutes_value_is_refused_on_a_dry_run_too(app, runner, three_stale_in_two_carts):
    result = _invoke(runner, "--dry-run", "--minutes", "0")

    assert result.exit_code == 2
    assert "must be a positive number of minutes" in result.output


@requires_postgres
def test_the_report_lists_what_this_run_cancelled_when_another_process_holds_one_of_them(
        app, runner, three_stale_in_two_carts):
    # Another sweeper (or a confirm) holds one stale payment's row: this run skips it, and its report
    # must not list as found what it did not cancel.
    s = three_stale_in_two_carts
    with app.app_context():
        holder = db.engine.connect()
    try:
        holding = holder.begin()
        holder.execute(text("SELECT 1 FROM payments WHERE transaction_id = :t FOR UPDATE"), {"t": s["a_old"]})
        result = _invoke(runner)
        holding.rollback()
    finally:
        holder.close()

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:5] == [
        "Found 2 old pending payments",
        f"  Payment {s['a_newer']}: 35 minutes old, Cart: {s['a']}",
        f"  Payment {s['oldest']}: 120 minutes old, Cart: {s['b']}",
        "Successfully cancelled 2 old pending payments affecting 2 carts",
    ]
    assert payment_row(app, s["a_old"]).status == "PENDING"
