"""Hostile input (issue 5): generated bodies and headers never make a 500, a non-JSON error or a leak.

Also: signatures are compared in constant time, a replayed webhook is
acknowledged and does nothing, and a body over 64 KiB is a 413 everywhere.
Hypothesis runs are small and seeded (derandomized) so the suite stays fast
and repeatable; HYPOTHESIS_EXAMPLES fuzzes harder.
"""

import hmac
import json
import os
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import make_admin, make_cart, make_payment, register, send_webhook, signature
from tests.integration.support import assert_json_error, make_booking, snapshot

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
ONE_KIB = 1024

# What a response must never show: internals, whatever the input.
LEAKS = [re.compile(p, re.IGNORECASE) for p in (
    r"traceback", r"sqlalchemy", r"psycopg", r"sqlite3?\.", r'File "', r"\bSELECT\b[^\"]*\bFROM\b",
    r"\bINSERT INTO\b", r"\bUPDATE\b \S+ SET\b", r"\bDELETE FROM\b", r"\bIntegrityError\b", r"\bOperationalError\b",
    r"\bDataError\b", r"violates .* constraint")]

# Every endpoint, with the fields its body takes (for bodies shaped like the real thing).
ENDPOINTS = [
    ("POST", "/api/auth/register", ["email", "password"]),
    ("POST", "/api/auth/token", ["email", "password"]),
    ("GET", "/api/services/", []),
    ("POST", "/api/services/", ["name", "price", "duration_minutes"]),
    ("POST", "/api/cart/carts/", ["selected_date", "selected_time"]),
    ("GET", "/api/cart/carts/", []),
    ("GET", "/api/cart/carts/{cart}/", []),
    ("PATCH", "/api/cart/carts/{cart}/", ["selected_date", "selected_time"]),
    ("POST", "/api/cart/carts/{cart}/items/", ["service_id", "quantity"]),
    ("DELETE", "/api/cart/carts/{cart}/items/{item}/", []),
    ("GET", "/api/cart/carts/{cart}/history/", []),
    ("GET", "/api/cart/carts/{cart}/deletion_status/", []),
    ("DELETE", "/api/cart/carts/{cart}/", []),
    ("POST", "/api/cart/carts/{cart}/cleanup_old_payments/", []),
    ("POST", "/api/payments/", ["cart_id"]),
    ("GET", "/api/payments/{txn}/", []),
    ("GET", "/api/payments/{txn}/history/", []),
    ("POST", "/api/payments/{txn}/confirm/", ["provider_payment_id", "signature"]),
    ("POST", "/api/payments/{txn}/cancel/", []),
    ("POST", "/api/payments/webhook/", ["event_id", "event", "provider_order_id", "provider_payment_id"]),
    ("GET", "/api/bookings/", []),
    ("GET", "/api/bookings/{booking}/", []),
    ("GET", "/healthz", []),
    ("GET", "/openapi.json", []),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]
WRITES = [(m, p) for m, p, _ in ENDPOINTS if m != "GET"]

# Text as an attacker sends it: NUL and other control characters, quotes, SQL, non-ASCII, surrogate-free.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "a\x00b@example.com", "' OR 1=1 --", "\"; DROP TABLE carts; --",
                     "%00", "../../etc/passwd", "<script>alert(1)</script>", "\u202e\ufeff", "😀" * 10,
                     "x" * 300, "2030-02-30", "24:61", "-1", "1e309", "NaN", "payment.captured",
                     "00000000-0000-0000-0000-000000000000", "TXNAAAAAAAAAAAA"]),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                        st.floats(allow_nan=False, allow_infinity=False), nasty_text)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=300)


def bodies(fields: list[str], world: dict):
    """Raw bodies: anything JSON, objects shaped like the endpoint's with hostile values, or not JSON at all."""
    plausible = {"email": st.just("customer@example.com"), "password": st.just("correct-horse"),
                 "cart_id": st.just(world["cart_id"]), "service_id": st.just(world["service_id"]),
                 "event": st.sampled_from(["payment.captured", "payment.failed"]),
                 "provider_order_id": st.just(world["order_id"]), "quantity": st.integers(-5, 120)}
    shaped = st.fixed_dictionaries({}, optional={
        name: st.one_of(plausible.get(name, nasty_text), json_value) for name in fields})
    return st.one_of(
        shaped.map(lambda body: json.dumps(body).encode()),
        json_value.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=64),
        st.just(b""),
    )


def headers(world: dict):
    auth = st.one_of(st.just(world["auth"]), st.just(f"Bearer {world['admin_token']}"),
                     header_text.map(lambda t: f"Bearer {t}"), header_text, st.just("Basic dXNlcjpwYXNz"))
    content_type = st.one_of(st.sampled_from(["application/json", "application/json; charset=latin-1",
                                              "text/plain", "application/x-www-form-urlencoded",
                                              "multipart/form-data; boundary=x", "text/html"]), header_text)
    return st.fixed_dictionaries({}, optional={
        "Authorization": auth, "Idempotency-Key": header_text, "X-Request-ID": header_text,
        "X-Gateway-Signature": st.one_of(header_text, st.just("sign")), "Content-Type": content_type})


@pytest.fixture
def world(app, client):
    """A customer with an active cart holding an item, a pending payment and a booking; an admin."""
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user)
    booking = make_booking(app, client, user)
    admin = make_admin(app, client)
    return {"cart": cart["cart_id"], "item": cart["items"][0]["item_id"], "txn": payment["transaction_id"],
            "booking": booking["booking"]["booking_id"], "cart_id": cart["cart_id"],
            "service_id": cart["items"][0]["service_id"], "order_id": payment["provider_order_id"],
            "payment": payment, "auth": user["headers"]["Authorization"], "admin_token": admin["token"],
            "user": user}


def sent_text(path: str, raw: bytes, sent_headers: dict) -> str:
    return " ".join([path, raw.decode("utf-8", "replace"), *sent_headers.values()])


def assert_clean(response, sent: str, *, json_expected: bool = True) -> None:
    """No 5xx; every error (and every answer but /metrics) is JSON; nothing internal shows."""
    text = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, text[:2000])
    if json_expected or response.status_code >= 400:
        assert response.mimetype == "application/json", (response.status_code, response.mimetype, text[:500])
        body = response.get_json()
        if response.status_code >= 400:
            assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(
                body.get("detail"), str), body
    for leak in LEAKS:
        if leak.search(text) and not leak.search(sent):
            pytest.fail(f"response shows {leak.pattern!r}: {text[:2000]}")


@pytest.mark.parametrize("endpoint", range(len(ENDPOINTS)), ids=ENDPOINT_IDS)
def test_generated_bodies_and_headers_never_get_a_500_a_non_json_error_or_internals(app, client, world, endpoint):
    method, template, fields = ENDPOINTS[endpoint]
    gateway = app.extensions["gateway"]

    @FUZZ
    @given(data=st.data())
    def attempt(data):
        ids = {name: data.draw(st.one_of(st.just(world[name]), nasty_text.map(lambda t: quote(t, safe=""))),
                               label=name) if f"{{{name}}}" in template else "" for name in
               ("cart", "item", "txn", "booking")}
        path = template.format(**ids)
        raw = data.draw(bodies(fields, world), label="body")
        sent_headers = data.draw(headers(world), label="headers")
        if sent_headers.get("X-Gateway-Signature") == "sign":  # a correctly signed body, to get past the check
            sent_headers["X-Gateway-Signature"] = gateway.sign_webhook(raw)
        response = client.open(path, method=method, data=raw, headers=sent_headers)
        assert_clean(response, sent_text(path, raw, sent_headers))

    attempt()


def test_correctly_signed_confirms_and_webhooks_with_hostile_ids_are_answered_cleanly(app, client, world):
    """Past the signature check, hostile ids reach the database: still no 500 and nothing leaks."""
    gateway = app.extensions["gateway"]

    @FUZZ
    @given(provider_payment_id=nasty_text.filter(lambda t: 0 < len(t) <= 64),
           event_id=nasty_text.filter(lambda t: 0 < len(t) <= 128),
           order_id=st.one_of(st.just(world["order_id"]), nasty_text.filter(lambda t: 0 < len(t) <= 64)),
           event=st.sampled_from(["payment.captured", "payment.failed"]))
    def attempt(provider_payment_id, event_id, order_id, event):
        payment = world["payment"]
        sig = gateway.sign_payment(payment["provider_order_id"], provider_payment_id)
        body = {"provider_payment_id": provider_payment_id, "signature": sig}
        confirmed = client.post(f"/api/payments/{payment['transaction_id']}/confirm/", json=body,
                                headers=world["user"]["headers"])
        assert_clean(confirmed, json.dumps(body))
        event_body = {"event_id": event_id, "event": event, "provider_order_id": order_id,
                      "provider_payment_id": provider_payment_id}
        hooked = send_webhook(app, client, event_body)
        assert_clean(hooked, json.dumps(event_body))

    attempt()


# Constant-time comparison of signatures.

@pytest.fixture
def compare_spy(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_a_confirm_signature_is_compared_with_hmac_compare_digest(app, client, world, compare_spy):
    payment = world["payment"]
    good = signature(app, payment["provider_order_id"], "pay_ct_1")
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")

    refused = client.post(f"/api/payments/{payment['transaction_id']}/confirm/", headers=world["user"]["headers"],
                          json={"provider_payment_id": "pay_ct_1", "signature": forged})
    assert_json_error(refused, 400, reason="invalid_signature")
    assert len(compare_spy) == 1 and forged.encode() in compare_spy[0]

    accepted = client.post(f"/api/payments/{payment['transaction_id']}/confirm/", headers=world["user"]["headers"],
                           json={"provider_payment_id": "pay_ct_1", "signature": good})
    assert accepted.status_code == 200, accepted.json
    assert len(compare_spy) == 2 and good.encode() in compare_spy[1]


def test_a_webhook_signature_is_compared_with_hmac_compare_digest(app, client, world, compare_spy):
    event = {"event_id": "evt_ct_1", "event": "payment.captured", "provider_order_id": world["order_id"],
             "provider_payment_id": "pay_ct_2"}
    raw = json.dumps(event).encode()
    good = app.extensions["gateway"].sign_webhook(raw)
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")

    refused = send_webhook(app, client, event, sig=forged)
    assert_json_error(refused, 401)
    assert len(compare_spy) == 1 and forged.encode() in compare_spy[0]

    accepted = send_webhook(app, client, event, sig=good)
    assert accepted.status_code == 200 and accepted.json["outcome"] == "captured", accepted.json
    assert len(compare_spy) == 2 and good.encode() in compare_spy[1]


# Replayed webhooks.

@pytest.mark.parametrize("event_name", ["payment.captured", "payment.failed"])
def test_a_replayed_webhook_is_acknowledged_and_does_nothing(app, client, world, event_name):
    event = {"event_id": f"evt_replay_{event_name}", "event": event_name, "provider_order_id": world["order_id"],
             "provider_payment_id": "pay_replay"}
    first = send_webhook(app, client, event)
    assert first.status_code == 200 and first.json["outcome"] in {"captured", "failed"}, first.json
    after_first = snapshot(app)

    replays = [send_webhook(app, client, event) for _ in range(3)]

    assert [(r.status_code, r.json["outcome"]) for r in replays] == [(200, "duplicate")] * 3
    assert snapshot(app) == after_first


def test_a_replayed_webhook_under_its_old_id_cannot_undo_a_later_state(app, client, world):
    failed = {"event_id": "evt_old_fail", "event": "payment.failed", "provider_order_id": world["order_id"],
              "provider_payment_id": "pay_old"}
    # Another of the customer's payments is captured; the old event for this one is replayed afterwards.
    assert send_webhook(app, client, failed).json["outcome"] == "failed"
    booked = make_booking(app, client, world["user"])
    after = snapshot(app)

    replay = send_webhook(app, client, failed)

    assert (replay.status_code, replay.json["outcome"]) == (200, "duplicate")
    assert snapshot(app) == after
    assert booked["payment"]["status"] == "SUCCESS"


# Body size.

@pytest.mark.parametrize(("method", "template"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_a_body_over_64_kib_is_a_413_json_error_on_every_write_endpoint(app, client, world, method, template):
    path = template.format(**world)
    raw = b'{"padding": "' + b"x" * (64 * ONE_KIB) + b'"}'
    headers = {"Authorization": world["auth"], "Content-Type": "application/json"}
    if template == "/api/services/":
        headers["Authorization"] = f"Bearer {world['admin_token']}"
    if template.endswith("webhook/"):
        headers["X-Gateway-Signature"] = app.extensions["gateway"].sign_webhook(raw)
    before = snapshot(app)

    response = client.open(path, method=method, data=raw, headers=headers)

    assert_json_error(response, 413)
    assert snapshot(app) == before


# NUL characters: PostgreSQL cannot store them, so they must be refused before any query.

def test_a_nul_character_in_any_body_string_is_a_400_naming_the_field_and_changes_nothing(app, client, world):
    payment = world["payment"]
    nul_payment_id = "pay\x00nul"
    event = {"event_id": "evt\x00nul", "event": "payment.captured", "provider_order_id": world["order_id"],
             "provider_payment_id": "pay_nul"}
    before = snapshot(app)

    answers = {
        "email": client.post("/api/auth/register", json={"email": "a\x00b@example.com", "password": "long-enough"}),
        "password": client.post("/api/auth/token", json={"email": "x@example.com", "password": "pw\x00"}),
        "name": client.post("/api/services/", headers={"Authorization": f"Bearer {world['admin_token']}"},
                            json={"name": "Wash\x00", "price": "10.00", "duration_minutes": 30}),
        "provider_payment_id": client.post(
            f"/api/payments/{payment['transaction_id']}/confirm/", headers=world["user"]["headers"],
            json={"provider_payment_id": nul_payment_id,
                  "signature": signature(app, payment["provider_order_id"], nul_payment_id)}),
        "event_id": send_webhook(app, client, event),
    }

    for field, response in answers.items():
        assert field in assert_json_error(response, 400)["fields"], (field, response.json)
    assert snapshot(app) == before
