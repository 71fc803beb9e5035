"""Bad input anywhere is a JSON error with the right status and changes nothing (SPEC §2)."""

import pytest

from tests.builders import make_admin, make_cart, make_payment, register
from tests.integration.support import assert_json_error, snapshot

ONE_KIB = 1024


@pytest.fixture
def world(app, client):
    """A customer with a filled cart and a pending payment, so every endpoint has something to change."""
    user = register(client)
    cart = make_cart(app, client, user)
    spare = make_cart(app, client, user)
    payment = make_payment(app, client, user, spare["cart_id"])
    admin = make_admin(app, client)
    return {"user": user, "admin": admin, "cart": cart, "payment": payment}


def _writes(world):
    """Every write endpoint that reads a body, as (method, path, headers of a caller allowed to use it)."""
    cart = f"/api/cart/carts/{world['cart']['cart_id']}/"
    txn = world["payment"]["transaction_id"]
    user, admin = world["user"]["headers"], world["admin"]["headers"]
    return [
        ("POST", "/api/auth/register", {}),
        ("POST", "/api/auth/token", {}),
        ("POST", "/api/services/", admin),
        ("POST", "/api/cart/carts/", user),
        ("PATCH", cart, user),
        ("POST", cart + "items/", user),
        ("POST", "/api/payments/", user),
        ("POST", f"/api/payments/{txn}/confirm/", user),
        ("POST", f"/api/payments/{txn}/cancel/", user),
    ]


WRITES = ["register", "token", "services", "create cart", "patch cart", "add item", "start payment", "confirm",
          "cancel"]


MALFORMED = {
    "unclosed": b"{",
    "missing-value": b'{"selected_date": }',
    "single-quotes": b"{'single': 'quotes'}",
    "nan": b'{"quantity": NaN}',
    "infinity": b'{"quantity": Infinity}',
    "not-utf8": b"\xff\xfe\x00",
    "two-objects": b'{"a": 1}{"b": 2}',
    "deeply-nested": b"[" * (30 * ONE_KIB) + b"]" * (30 * ONE_KIB),  # under 64 KiB; must not be a 500
    # Valid JSON, but not an object.
    "array": b"[]",
    "list": b"[1, 2]",
    "string": b'"text"',
    "number": b"42",
    "true": b"true",
    "null": b"null",
}


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("endpoint", range(len(WRITES)), ids=WRITES)
def test_a_body_that_is_not_a_json_object_is_a_400_and_changes_nothing(app, client, world, raw, endpoint):
    method, path, headers = _writes(world)[endpoint]
    before = snapshot(app)

    response = client.open(path, method=method, data=raw, headers={**headers, "Content-Type": "application/json"})

    assert_json_error(response, 400)
    assert snapshot(app) == before


@pytest.mark.parametrize("endpoint", range(len(WRITES)), ids=WRITES)
def test_a_body_over_64_kib_is_a_413_json_error_and_changes_nothing(app, client, world, endpoint):
    method, path, headers = _writes(world)[endpoint]
    raw = b'{"padding": "' + b"x" * (64 * ONE_KIB) + b'"}'
    before = snapshot(app)

    response = client.open(path, method=method, data=raw,
                           headers={**headers, "Content-Type": "application/json"})

    assert_json_error(response, 413)
    assert snapshot(app) == before


def test_an_oversized_webhook_body_is_a_413_json_error(app, client, world):
    raw = b'{"padding": "' + b"x" * (64 * ONE_KIB) + b'"}'
    before = snapshot(app)

    response = client.post("/api/payments/webhook/", data=raw,
                           headers={"Content-Type": "application/json",
                                    "X-Gateway-Signature": app.extensions["gateway"].sign_webhook(raw)})

    assert_json_error(response, 413)
    assert snapshot(app) == before


def test_a_body_just_under_64_kib_is_read_and_judged_on_its_fields(app, client, world):
    cart = world["cart"]
    padding = 64 * ONE_KIB - 200
    raw = b'{"selected_time": "11:00", "padding": "' + b"x" * padding + b'"}'

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", data=raw,
                            headers={**world["user"]["headers"], "Content-Type": "application/json"})

    assert set(assert_json_error(response, 400)["fields"]) == {"padding"}


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/api/cart/carts/", {"GET", "POST"}),
    ("DELETE", "/api/services/", {"GET", "POST"}),
    ("GET", "/api/payments/", {"POST"}),
    ("PUT", "/api/payments/webhook/", {"POST"}),
    ("GET", "/api/auth/register", {"POST"}),
    ("PUT", "/api/bookings/", {"GET"}),
])
def test_a_wrong_method_is_a_405_json_error_with_allow(app, client, world, method, path, allowed):
    before = snapshot(app)

    response = client.open(path, method=method, headers=world["user"]["headers"], json={})

    assert_json_error(response, 405)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert snapshot(app) == before


@pytest.mark.parametrize("path", ["/nope", "/api/", "/api/carts/", "/api/cart/carts/x/y/z/", "/api/payments/a/b/"])
def test_an_unknown_url_is_a_404_json_error(app, client, world, path):
    response = client.get(path, headers=world["user"]["headers"])

    assert_json_error(response, 404)


def test_an_empty_body_is_treated_as_an_empty_object(app, client, world):
    response = client.post("/api/cart/carts/", data=b"", headers=world["user"]["headers"])

    assert response.status_code == 201
    assert response.json["selected_date"] is None


def test_bad_input_never_produces_an_html_page(app, client, world):
    responses = [
        client.post("/api/cart/carts/", data=b"<html>", headers=world["user"]["headers"]),
        client.get("/definitely/not/here"),
        client.delete("/api/auth/token"),
    ]

    for response in responses:
        assert response.mimetype == "application/json"
        assert b"<html" not in response.get_data().lower()
