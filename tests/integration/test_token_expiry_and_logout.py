"""Tokens expire TOKEN_TTL_MINUTES after they were issued, and a logout revokes one at once (SPEC §3 Auth).

"At the exact boundary": a token is expired from the instant `now >= expires_at`, by the
injected clock; a microsecond before, it works.
"""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from persistence.db import db
from persistence.models import ApiToken
from tests.builders import log_in, make_admin, register
from tests.integration.support import assert_json_error, snapshot

EXPIRES = datetime(2030, 1, 16, 12, 0, tzinfo=UTC)  # the FakeClock's start + the default 1440 minutes
AUTHENTICATED = ("GET", "/api/bookings/")


def log_out(client, headers: dict, **kwargs):
    return client.post("/api/auth/logout", headers=headers, **kwargs)


def works(client, headers: dict) -> bool:
    response = client.open(AUTHENTICATED[1], method=AUTHENTICATED[0], headers=headers)
    assert response.status_code in (200, 401), response.get_data(as_text=True)
    return response.status_code == 200


def token_row(app, token: str) -> ApiToken:
    with app.app_context():
        return db.session.scalar(select(ApiToken).where(
            ApiToken.token_hash == hashlib.sha256(token.encode()).hexdigest()))


def assert_not_valid(response) -> None:
    """The 401 of an unknown or logged-out token: no reason, nothing said about which."""
    body = assert_json_error(response, 401)
    assert "reason" not in body
    assert response.headers["WWW-Authenticate"] == "Bearer"


def assert_expired(response, expired_at: str = "2030-01-16T12:00:00.000Z") -> None:
    body = assert_json_error(response, 401, reason="token_expired")
    assert expired_at in body["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


# ---- expiry ---------------------------------------------------------------------------------------------------


def test_register_and_login_answer_when_their_token_expires_by_the_service_clock(client, clock):
    clock.set(datetime(2030, 3, 1, 8, 30, 15, 250000, tzinfo=UTC))
    user = register(client)
    clock.advance(minutes=5)

    logged_in = log_in(client, user)

    assert user["expires_at"] == "2030-03-02T08:30:15.250Z"
    assert logged_in["expires_at"] == "2030-03-02T08:35:15.250Z"
    assert token_row(client.application, user["token"]).expires_at == datetime(2030, 3, 2, 8, 30, 15, 250000,
                                                                                  tzinfo=UTC)


def test_a_token_works_until_a_microsecond_before_its_expiry_and_is_token_expired_from_that_instant(client, clock):
    user = register(client)

    clock.set(EXPIRES - timedelta(microseconds=1))
    assert works(client, user["headers"])
    clock.set(EXPIRES)
    at_expiry = client.get("/api/bookings/", headers=user["headers"])
    clock.advance(days=400)
    long_after = client.get("/api/bookings/", headers=user["headers"])

    assert_expired(at_expiry)
    assert_expired(long_after)


@pytest.mark.parametrize(("ttl", "last_good", "first_expired"), [
    (0.5, timedelta(seconds=29, microseconds=999999), timedelta(seconds=30)),
    (90, timedelta(minutes=90) - timedelta(microseconds=1), timedelta(minutes=90)),
])
def test_the_lifetime_is_token_ttl_minutes_fractions_included(make_app, app, clock, ttl, last_good, first_expired):
    client = make_app(TOKEN_TTL_MINUTES=ttl).test_client()
    issued_at = clock()
    user = register(client)

    clock.set(issued_at + last_good)
    assert works(client, user["headers"])
    clock.set(issued_at + first_expired)
    assert not works(client, user["headers"])


def test_an_expired_token_is_refused_by_every_endpoint_that_needs_one_and_changes_nothing(app, client, clock):
    user = register(client)
    clock.set(EXPIRES)
    before = snapshot(app)

    for method, path in [("GET", "/api/cart/carts/"), ("POST", "/api/cart/carts/"), ("POST", "/api/payments/"),
                         ("GET", "/api/admin/refunds/"), ("POST", "/api/services/"), ("POST", "/api/auth/logout")]:
        assert_expired(client.open(path, method=method, headers=user["headers"], json={}))
    assert snapshot(app) == before


def test_a_new_login_after_expiry_gives_a_working_token_and_the_expired_one_stays_expired(client, clock):
    user = register(client)
    clock.set(EXPIRES)

    fresh = log_in(client, user)

    assert fresh["expires_at"] == "2030-01-17T12:00:00.000Z"
    assert works(client, fresh["headers"])
    assert_expired(client.get("/api/bookings/", headers=user["headers"]))


def test_an_admins_expired_token_is_a_401_not_a_403(app, client, clock):
    admin = make_admin(app, client)
    clock.set(EXPIRES)

    assert_expired(client.get("/api/admin/refunds/", headers=admin["headers"]))


# ---- logout ---------------------------------------------------------------------------------------------------


def test_logout_answers_204_with_no_body_and_the_token_is_a_401_from_then_on(client):
    user = register(client)
    assert works(client, user["headers"])

    response = log_out(client, user["headers"])

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_not_valid(client.get("/api/bookings/", headers=user["headers"]))
    assert_not_valid(client.post("/api/cart/carts/", headers=user["headers"], json={}))


def test_logout_revokes_only_the_token_sent_the_users_other_tokens_and_other_users_keep_working(app, client):
    user = register(client)
    second = log_in(client, user)
    third = log_in(client, user)
    someone_else = register(client)

    assert log_out(client, second["headers"]).status_code == 204

    assert not works(client, second["headers"])
    assert works(client, user["headers"])
    assert works(client, third["headers"])
    assert works(client, someone_else["headers"])
    assert token_row(app, user["token"]).revoked_at is None
    assert token_row(app, third["token"]).revoked_at is None


def test_a_revocation_is_recorded_on_the_tokens_row_which_is_kept(app, client, clock):
    user = register(client)
    clock.advance(minutes=7)

    log_out(client, user["headers"])

    row = token_row(app, user["token"])
    assert row is not None
    assert row.revoked_at == datetime(2030, 1, 15, 12, 7, tzinfo=UTC)
    assert row.expires_at == EXPIRES


def test_a_logout_with_a_token_already_logged_out_is_a_401_and_changes_nothing(app, client, clock):
    user = register(client)
    log_out(client, user["headers"])
    clock.advance(minutes=1)
    before = snapshot(app)

    assert_not_valid(log_out(client, user["headers"]))
    assert snapshot(app) == before
    assert token_row(app, user["token"]).revoked_at == datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def test_a_logout_with_an_expired_token_is_a_401_token_expired_and_revokes_nothing(app, client, clock):
    user = register(client)
    clock.set(EXPIRES)
    before = snapshot(app)

    assert_expired(log_out(client, user["headers"]))
    assert snapshot(app) == before


def test_a_logged_out_token_past_its_expiry_is_still_just_not_valid(client, clock):
    user = register(client)
    log_out(client, user["headers"])
    clock.set(EXPIRES)

    assert_not_valid(client.get("/api/bookings/", headers=user["headers"]))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-real-token"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_a_logout_without_a_valid_token_is_a_401_and_changes_nothing(app, client, headers):
    register(client)
    before = snapshot(app)

    response = log_out(client, headers)

    assert_json_error(response, 401)
    assert snapshot(app) == before


@pytest.mark.parametrize("kwargs", [{}, {"json": {}}, {"data": b"", "content_type": "application/json"}])
def test_a_logout_takes_no_body_or_an_empty_object(client, kwargs):
    user = register(client)

    assert log_out(client, user["headers"], **kwargs).status_code == 204
    assert not works(client, user["headers"])


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"json": {"token": "another"}}, 400),
    ({"json": []}, 400),
    ({"json": "logout"}, 400),
    ({"data": b"{", "content_type": "application/json"}, 400),
    ({"data": b"{}", "content_type": "text/plain"}, 415),
])
def test_a_logout_with_a_bad_body_is_a_json_error_and_revokes_nothing(app, client, kwargs, status):
    user = register(client)
    before = snapshot(app)

    response = log_out(client, user["headers"], **kwargs)

    assert_json_error(response, status)
    assert snapshot(app) == before
    assert works(client, user["headers"])


def test_a_logout_on_one_process_holds_at_once_on_another_that_has_just_used_the_token(make_app, app):
    # Two apps on one database, as two workers: each has served the token before the logout.
    first, second = make_app().test_client(), make_app().test_client()
    user = register(first)
    assert works(first, user["headers"]) and works(second, user["headers"])

    assert log_out(first, user["headers"]).status_code == 204

    assert_not_valid(second.get("/api/bookings/", headers=user["headers"]))
    assert_not_valid(first.get("/api/bookings/", headers=user["headers"]))


def test_a_token_revoked_in_the_database_behind_the_apps_back_is_refused_on_the_next_request(app, client, clock):
    # What another process's logout leaves behind, and nothing else: no memory of the token may answer instead.
    user = register(client)
    for _ in range(3):
        assert works(client, user["headers"])
    with app.app_context():
        db.session.execute(update(ApiToken).values(revoked_at=clock()))
        db.session.commit()

    assert_not_valid(client.get("/api/bookings/", headers=user["headers"]))
