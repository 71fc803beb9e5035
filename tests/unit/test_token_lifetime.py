"""When a bearer token stops working (machines/token_lifetime.py), at its boundaries."""

from datetime import UTC, datetime, timedelta

from machines.token_lifetime import TokenState, expires_at, state

ISSUED = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)


def test_a_token_expires_ttl_minutes_after_it_was_issued_fractions_included():
    assert expires_at(ISSUED, 1440) == EXPIRES
    assert expires_at(ISSUED, 0.5) == ISSUED + timedelta(seconds=30)


def test_an_expiry_is_rounded_up_to_the_millisecond_the_answers_give_it_in():
    assert expires_at(ISSUED + timedelta(microseconds=250500), 1440) == EXPIRES + timedelta(milliseconds=251)
    assert expires_at(ISSUED + timedelta(microseconds=250000), 1440) == EXPIRES + timedelta(milliseconds=250)
    assert expires_at(ISSUED, 1 / 60_000_000) == ISSUED + timedelta(milliseconds=1)  # a microsecond's lifetime


def test_a_token_is_active_until_a_microsecond_before_its_expiry_and_expired_from_that_instant_on():
    assert state(EXPIRES, None, ISSUED) is TokenState.ACTIVE
    assert state(EXPIRES, None, EXPIRES - MICROSECOND) is TokenState.ACTIVE
    assert state(EXPIRES, None, EXPIRES) is TokenState.EXPIRED
    assert state(EXPIRES, None, EXPIRES + timedelta(days=365)) is TokenState.EXPIRED


def test_a_revoked_token_is_revoked_before_and_after_its_expiry():
    assert state(EXPIRES, ISSUED, ISSUED) is TokenState.REVOKED
    assert state(EXPIRES, ISSUED, EXPIRES) is TokenState.REVOKED
