"""Registration, tokens and the bearer check (SPEC §2 Auth, §3 Auth)."""

import hashlib
import re

import pytest
from sqlalchemy import select

from persistence.db import db
from persistence.models import ApiToken, User
from tests.builders import auth, register
from tests.integration.support import assert_json_error, count, snapshot, statements_recorded


def test_registering_returns_the_user_id_the_email_and_a_working_token_with_its_expiry(app, client):
    response = client.post("/api/auth/register", json={"email": "asha@example.com", "password": "long-enough"})

    assert response.status_code == 201
    assert set(response.json) == {"user_id", "email", "token", "expires_at"}
    assert response.json["expires_at"] == "2030-01-16T12:00:00.000Z"  # the FakeClock's start + 1440 minutes
    assert response.json["email"] == "asha@example.com"
    assert len(response.json["user_id"]) == 36
    carts = client.get("/api/cart/carts/", headers=auth(response.json["token"]))
    assert carts.status_code == 200
    assert carts.json == []


def test_passwords_and_tokens_are_stored_only_as_hashes(app, client):
    user = register(client, "hashes@example.com", password="plain-text-pw")

    with app.app_context():
        row = db.session.scalar(select(User).where(User.email == "hashes@example.com"))
        tokens = list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == row.id)))
    assert row.password_hash != "plain-text-pw"
    assert "plain-text-pw" not in row.password_hash
    assert [t.token_hash for t in tokens] == [hashlib.sha256(user["token"].encode()).hexdigest()]


def test_registering_a_taken_email_is_a_conflict_and_creates_nobody(app, client):
    register(client, "taken@example.com")
    before = snapshot(app)

    response = client.post("/api/auth/register", json={"email": "taken@example.com", "password": "other-password"})

    assert_json_error(response, 409, reason="email_taken")
    assert snapshot(app) == before


def test_an_email_differing_only_in_case_is_taken_too(app, client):
    register(client, "case@example.com")

    response = client.post("/api/auth/register", json={"email": "CASE@Example.com", "password": "other-password"})

    assert_json_error(response, 409)
    assert count(app, User) == 1


@pytest.mark.parametrize("password", ["", "short", "7chars!"])
def test_a_password_shorter_than_eight_characters_is_refused(app, client, password):
    response = client.post("/api/auth/register", json={"email": "short@example.com", "password": password})

    body = assert_json_error(response, 400)
    assert set(body["fields"]) == {"password"}
    assert count(app, User) == 0


def test_a_password_of_exactly_eight_characters_is_accepted(client):
    response = client.post("/api/auth/register", json={"email": "eight@example.com", "password": "12345678"})

    assert response.status_code == 201


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({"email": "not-an-email", "password": "long-enough"}, {"email"}),
    ({"email": 42, "password": "long-enough"}, {"email"}),
    ({"email": "x@example.com", "password": 12345678}, {"password"}),
    ({"password": "long-enough"}, {"email"}),
    ({"email": "x@example.com"}, {"password"}),
    ({"email": "x@example.com", "password": "long-enough", "is_admin": True}, {"is_admin"}),
])
def test_registration_with_bad_fields_names_each_field_and_creates_nobody(app, client, body, bad_fields):
    response = client.post("/api/auth/register", json=body)

    assert set(assert_json_error(response, 400)["fields"]) == bad_fields
    assert count(app, User) == 0


def test_a_registered_user_gets_a_new_token_for_the_right_password(app, client):
    user = register(client, "login@example.com", password="right-password")

    response = client.post("/api/auth/token", json={"email": "login@example.com", "password": "right-password"})

    assert response.status_code == 200
    assert set(response.json) == {"token", "expires_at"}
    assert response.json["expires_at"] == "2030-01-16T12:00:00.000Z"
    assert response.json["token"] != user["token"]
    assert client.get("/api/cart/carts/", headers=auth(response.json["token"])).status_code == 200
    assert client.get("/api/cart/carts/", headers=user["headers"]).status_code == 200


@pytest.mark.parametrize(("email", "password"), [
    ("login@example.com", "wrong-password"),
    ("nobody@example.com", "right-password"),
])
def test_a_wrong_password_or_unknown_email_gets_401_and_no_token(app, client, email, password):
    register(client, "login@example.com", password="right-password")
    before = snapshot(app)

    response = client.post("/api/auth/token", json={"email": email, "password": password})

    body = assert_json_error(response, 401)
    assert "token" not in body
    after = snapshot(app)
    # Only the failure is counted (for the login throttle); no token, nothing else changes.
    failures = after.pop("login_failures")
    before.pop("login_failures")
    assert after == before
    assert sorted(row[1] for row in failures) == sorted([repr(f"email:{email}"), repr("addr:127.0.0.1")])


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer    "},
    {"Authorization": "Bearer not-a-real-token"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Token abc"},
])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/cart/carts/"),
    ("POST", "/api/cart/carts/"),
    ("GET", "/api/bookings/"),
    ("POST", "/api/payments/"),
    ("POST", "/api/services/"),
])
def test_a_missing_or_bad_bearer_token_is_401_json_and_changes_nothing(app, client, headers, method, path):
    before = snapshot(app)

    response = client.open(path, method=method, headers=headers, json={})

    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert snapshot(app) == before


def test_a_token_for_a_user_is_not_accepted_with_a_changed_character(app, client):
    user = register(client)
    forged = user["token"][:-1] + ("A" if user["token"][-1] != "A" else "B")

    assert_json_error(client.get("/api/cart/carts/", headers=auth(forged)), 401)


def test_the_bearer_scheme_name_is_case_insensitive(client):
    user = register(client)

    response = client.get("/api/cart/carts/", headers={"Authorization": f"bearer {user['token']}"})

    assert response.status_code == 200


TXN = "TXNAAAAAAAAAAAA"
ID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/cart/carts/"),
    ("POST", "/api/cart/carts/"),
    ("GET", f"/api/cart/carts/{ID}/"),
    ("PATCH", f"/api/cart/carts/{ID}/"),
    ("GET", f"/api/cart/carts/{ID}/history/"),
    ("POST", f"/api/cart/carts/{ID}/items/"),
    ("DELETE", f"/api/cart/carts/{ID}/items/{ID}/"),
    ("POST", "/api/payments/"),
    ("GET", f"/api/payments/{TXN}/"),
    ("GET", f"/api/payments/{TXN}/history/"),
    ("POST", f"/api/payments/{TXN}/confirm/"),
    ("POST", f"/api/payments/{TXN}/cancel/"),
    ("GET", f"/api/payments/{TXN}/refunds/"),
    ("GET", "/api/admin/refunds/"),
    ("POST", f"/api/admin/refunds/{ID}/retry/"),
    ("GET", f"/api/cart/carts/{ID}/deletion_status/"),
    ("DELETE", f"/api/cart/carts/{ID}/"),
    ("POST", f"/api/cart/carts/{ID}/cleanup_old_payments/"),
    ("GET", "/api/bookings/"),
    ("GET", f"/api/bookings/{ID}/"),
    ("POST", "/api/services/"),
])
def test_every_customer_endpoint_needs_a_bearer_token(app, client, method, path):
    response = client.open(path, method=method, json={})

    assert_json_error(response, 401)


RESOURCE_TABLES = re.compile(r"\b(carts|cart_items|payments|bookings|refunds|transitions)\b")
# Every route with an id in its path, the id malformed (not a UUID, not TXN + 12 upper-case letters/digits).
MALFORMED_ID_PATHS = [
    ("GET", "/api/cart/carts/bad/"),
    ("PATCH", "/api/cart/carts/bad/"),
    ("DELETE", "/api/cart/carts/bad/"),
    ("GET", "/api/cart/carts/bad/history/"),
    ("POST", "/api/cart/carts/bad/items/"),
    ("DELETE", f"/api/cart/carts/{ID}/items/bad/"),
    ("GET", "/api/cart/carts/bad/deletion_status/"),
    ("POST", "/api/cart/carts/bad/cleanup_old_payments/"),
    ("GET", "/api/payments/BAD/"),
    ("GET", "/api/payments/BAD/history/"),
    ("POST", "/api/payments/BAD/confirm/"),
    ("POST", "/api/payments/BAD/cancel/"),
    ("GET", "/api/payments/BAD/refunds/"),
    ("GET", "/api/bookings/bad/"),
    ("GET", f"/api/bookings/{ID}%0A/"),  # a well-formed id and a newline: `$` alone would let it through
    ("GET", f"/api/payments/{TXN}%0A/"),
]


@pytest.mark.parametrize(("method", "path"), MALFORMED_ID_PATHS)
def test_without_a_token_a_malformed_path_id_is_401_not_404(app, client, method, path):
    response = client.open(path, method=method, json={})

    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), MALFORMED_ID_PATHS)
def test_with_a_valid_token_a_malformed_path_id_is_404_before_any_query(app, client, method, path):
    user = register(client)

    with statements_recorded(app) as statements:
        response = client.open(path, method=method, headers=user["headers"], json={})

    assert_json_error(response, 404)
    # the token may have been looked up; nothing asked the database about the malformed id
    assert [s for s in statements if RESOURCE_TABLES.search(s)] == []


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/services/", 200),
    ("POST", "/api/auth/register", 400),
    ("POST", "/api/auth/token", 400),
    ("POST", "/api/payments/webhook/", 401),  # its own signature check, not a bearer token
])
def test_register_token_the_service_list_and_the_webhook_need_no_bearer_token(app, client, method, path, status):
    response = client.open(path, method=method, json={})

    assert response.status_code == status
    assert "WWW-Authenticate" not in response.headers
