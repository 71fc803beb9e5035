"""What a hostile review of issue 16 found: an answered expiry the token outlives, a lifetime of no time at all."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.builders import log_in, register
from tests.integration.support import assert_json_error
from web.config import ConfigError, load

MICROSECOND = timedelta(microseconds=1)


def answered(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def status_at(client, clock, moment: datetime, headers: dict) -> int:
    clock.set(moment)
    return client.get("/api/bookings/", headers=headers).status_code


def test_a_token_issued_between_two_milliseconds_stops_working_at_the_very_expires_at_it_was_answered_with(
        client, clock):
    # Times are answered to the millisecond (SPEC §2); a real clock has microseconds. Issued at .250500, the
    # answer said .250 while the token worked until .250500: at the instant it was told, it still worked.
    clock.set(datetime(2030, 3, 1, 8, 30, 15, 250500, tzinfo=UTC))
    user = register(client)
    clock.advance(microseconds=300)
    second = log_in(client, user)

    for token in (user, second):
        expires = answered(token["expires_at"])
        assert status_at(client, clock, expires - MICROSECOND, token["headers"]) == 200
        clock.set(expires)
        body = assert_json_error(client.get("/api/bookings/", headers=token["headers"]), 401, reason="token_expired")
        assert token["expires_at"] in body["detail"]
    # Never less than TOKEN_TTL_MINUTES: the answer is the issue instant plus a day, rounded up to the millisecond.
    assert (user["expires_at"], second["expires_at"]) == ("2030-03-02T08:30:15.251Z", "2030-03-02T08:30:15.251Z")


@pytest.mark.parametrize("raw", ["1e-300", "1e-9"])
def test_a_token_lifetime_too_short_to_be_any_time_at_all_is_refused_like_zero(raw):
    # timedelta(minutes=1e-9) is no time: every token would be expired the instant it was issued, and register
    # would answer 201 with a token that can never be used.
    with pytest.raises(ConfigError, match=f"TOKEN_TTL_MINUTES must be a positive number of minutes, not '{raw}'"):
        load("/nonexistent/instance", environ={"TOKEN_TTL_MINUTES": raw})


def test_the_shortest_token_lifetime_the_service_takes_still_gives_a_token_that_works_once_issued(make_app, app,
                                                                                                  clock):
    client = make_app(TOKEN_TTL_MINUTES=1 / 60_000_000).test_client()  # one microsecond
    clock.set(datetime(2030, 3, 1, 8, 30, 15, 250000, tzinfo=UTC))
    user = register(client)

    assert status_at(client, clock, clock(), user["headers"]) == 200
    assert status_at(client, clock, answered(user["expires_at"]), user["headers"]) == 401
