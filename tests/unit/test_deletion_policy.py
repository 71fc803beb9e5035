"""The deletion and timing policy at its boundaries: stale at exactly the timeout, waits floored, Retry-After up."""

from datetime import UTC, datetime, timedelta

import pytest

from machines.deletion_policy import (
    PaymentTiming,
    age_minutes,
    auto_cleanup_message,
    deletion_info,
    expires_at,
    is_stale,
    minutes_label,
    nothing_to_clean_message,
    stale_cutoff,
    wait_message,
)

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
TIMEOUT = 30


def made(minutes_ago: float, status: str = "PENDING") -> PaymentTiming:
    return PaymentTiming(status, NOW - timedelta(minutes=minutes_ago))


def test_a_payment_is_stale_at_exactly_the_timeout_and_not_a_microsecond_before():
    assert is_stale(NOW - timedelta(minutes=30), NOW, TIMEOUT)
    assert not is_stale(NOW - timedelta(minutes=30) + timedelta(microseconds=1), NOW, TIMEOUT)
    assert stale_cutoff(NOW, TIMEOUT) == NOW - timedelta(minutes=30)
    assert expires_at(NOW, 0.5) == NOW + timedelta(seconds=30)


def test_ages_are_floored_to_whole_minutes_and_never_negative():
    assert age_minutes(NOW - timedelta(minutes=1, microseconds=-1), NOW) == 0
    assert age_minutes(NOW - timedelta(minutes=1), NOW) == 1
    assert age_minutes(NOW + timedelta(minutes=5), NOW) == 0


@pytest.mark.parametrize(("cart_status", "payments", "reason", "can_delete"), [
    ("CONVERTED", [], "cart_converted", False),
    ("DELETED", [], "cart_deleted", False),
    ("ACTIVE", [], "no_payments", True),
    ("ACTIVE", [made(5, "CANCELLED"), made(1, "FAILED")], "no_pending_payments", True),
    ("ACTIVE", [made(30), made(45, "INITIATED")], "stale_pending_payments", True),
    ("ACTIVE", [made(30), made(29.99)], "pending_payment_wait", False),
])
def test_each_reason_is_given_exactly_when_it_applies(cart_status, payments, reason, can_delete):
    info = deletion_info(cart_status, payments, now=NOW, timeout_minutes=TIMEOUT)

    assert (info.reason, info.can_delete) == (reason, can_delete)


def test_the_newest_fresh_open_payment_decides_the_wait_and_retry_after_is_exact():
    info = deletion_info("ACTIVE", [made(10), made(2.5), made(40), made(1, "CANCELLED")], now=NOW,
                         timeout_minutes=TIMEOUT)

    assert info.payment_count == 2  # the fresh open ones only
    assert info.latest_payment_age_minutes == 2
    assert info.wait_time_minutes == 27  # floor(30 - 2.5)
    assert info.retry_after == NOW + timedelta(minutes=27.5)
    assert info.seconds_to_wait(NOW) == 27 * 60 + 30
    assert info.seconds_to_wait(NOW + timedelta(microseconds=1)) == 27 * 60 + 30  # rounded up
    assert info.message == ("Cart has 2 pending payment(s). Please wait 27 more minute(s) before deletion or "
                            "complete the payments.")


def test_under_a_minute_left_says_less_than_1_minute():
    info = deletion_info("ACTIVE", [made(29.5)], now=NOW, timeout_minutes=TIMEOUT)

    assert info.wait_time_minutes == 0
    assert info.message == "Cart has pending payment(s). Please wait less than 1 minute before deletion."


@pytest.mark.parametrize(("count", "wait", "message"), [
    (1, 5, "Cart has pending payment(s). Please wait 5 more minute(s) before deletion or complete the payment."),
    (3, 5, "Cart has 3 pending payment(s). Please wait 5 more minute(s) before deletion or complete the payments."),
    (1, 0, "Cart has pending payment(s). Please wait less than 1 minute before deletion."),
    (3, 0, "Cart has 3 pending payment(s). Please wait less than 1 minute before deletion."),
])
def test_the_four_wait_messages_word_for_word(count, wait, message):
    assert wait_message(count, wait) == message


def test_thresholds_are_written_as_people_write_them():
    assert [minutes_label(m) for m in (30, 0.5, 1_000_000, 30.0)] == ["30", "0.5", "1000000", "30"]
    assert auto_cleanup_message(2, 30) == "Auto-cancelled 2 pending payment(s) older than 30 minutes"
    assert nothing_to_clean_message(0.5) == "No pending payments older than 0.5 minutes"
