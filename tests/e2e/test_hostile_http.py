"""Hostile input over real HTTP to a real server (gunicorn, 3 workers, PostgreSQL): the app's own limits.

Each class of finding of the edge review is sent on a socket of its own,
byte for byte, so nothing in a client library tidies it up first. The front
(nginx) has its own tests in test_front.py; these hold for the app whatever
sits in front of it.
"""

import json
import re
import socket
import uuid

import pytest

from tests.e2e.helpers import Answer, sign_webhook

pytestmark = pytest.mark.e2e

TIMEOUT = 15


def exchange(base: str, request: bytes) -> Answer:
    """Send `request` as it is on a new connection; read the whole answer (the server closes it)."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", ""):
        body = _unchunk(body)
    parsed = json.loads(body) if headers.get("content-type", "").startswith("application/json") and body else None
    return Answer(status, parsed, headers, body.decode("utf-8", "replace"))


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def chunked_post(path: str, chunks: list[bytes], headers: dict | None = None, *, sizes: list[bytes] | None = None
                 ) -> bytes:
    """A chunked POST of `chunks` (with their size lines, or `sizes` given instead, to break them)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             "Transfer-Encoding: chunked", "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    body = b"".join((sizes[i] if sizes else f"{len(c):x}".encode()) + b"\r\n" + c + b"\r\n"
                    for i, c in enumerate(chunks)) + b"0\r\n\r\n"
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def assert_json_error(answer: Answer, status: int, reason: str | None = None) -> None:
    assert answer.status == status, answer
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    assert isinstance(answer.body, dict) and answer.body.get("error") and answer.body.get("detail"), answer
    if reason is not None:
        assert answer.body.get("reason") == reason, answer


def carts_of(live, user) -> list:
    return live.http.get("/api/cart/carts/", headers=user["headers"]).body


def test_a_chunked_body_over_64_kib_is_a_413_and_creates_nothing(live):
    user = live.api.register()
    auth = user["headers"]
    padded = b" " * (200 * 1024) + b"{}"  # whitespace then a valid body: once created a cart
    answer = exchange(live.server.base, chunked_post("/api/cart/carts/", [padded[i:i + 8192]
                                                                          for i in range(0, len(padded), 8192)], auth))

    assert_json_error(answer, 413)
    assert carts_of(live, user) == []


def test_a_chunked_body_just_under_64_kib_is_read_whole(live):
    user = live.api.register()
    body = json.dumps({"selected_date": None, "selected_time": None}).encode()
    body = body[:-1] + b" " * (64 * 1024 - len(body)) + b"}"
    answer = exchange(live.server.base, chunked_post("/api/cart/carts/", [body[:30000], body[30000:]],
                                                     user["headers"]))

    assert answer.status == 201, answer


def test_a_signed_webhook_sent_chunked_is_verified_over_the_whole_body(live):
    raw = json.dumps({"event_id": f"evt_{uuid.uuid4().hex}", "event": "payment.failed",
                      "provider_order_id": "order_unknown", "provider_payment_id": "pay_1"}).encode()
    answer = exchange(live.server.base, chunked_post("/api/payments/webhook/", [raw[:20], raw[20:]],
                                                     {"X-Gateway-Signature": sign_webhook(raw)}))

    assert answer.status == 200 and answer.body["outcome"] == "unknown_order", answer


def test_a_malformed_chunk_size_is_a_json_400_on_every_endpoint_that_reads_a_body(live):
    user = live.api.register()
    for path in ("/api/cart/carts/", "/api/auth/register", "/api/payments/", "/api/payments/webhook/"):
        answer = exchange(live.server.base, chunked_post(path, [b"{}"], user["headers"], sizes=[b"zz"]))

        assert_json_error(answer, 400)


def test_made_up_methods_never_grow_the_metrics(live):
    def made_up(n: int) -> bytes:  # upper-case letters only, as gunicorn lets through
        name = "Q" + "".join(chr(65 + (n // 26 ** i) % 26) for i in range(3))
        return f"{name} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()

    for n in range(12):  # warm: the "other" series for /healthz exists from here on
        exchange(live.server.base, made_up(n))
    live.http.get("/metrics")  # and the series of /metrics itself
    before = len(live.http.get("/metrics").text)
    for n in range(12, 112):
        assert exchange(live.server.base, made_up(n)).status == 405
    metrics = live.http.get("/metrics").text

    assert 'method="other"' in metrics and not re.search(r'method="Q[A-Z]{3}"', metrics)
    assert len(metrics) < before * 1.05  # the series existed already; only their counts grew


def test_a_cart_total_over_the_largest_amount_is_refused_and_changes_nothing(live):
    admin = live.api.admin_headers()
    user = live.api.register()
    service = live.http.post("/api/services/", {"name": "Yacht", "price": "9999999999.00", "duration_minutes": 60},
                             headers=admin).body
    cart = live.http.post("/api/cart/carts/", {}, headers=user["headers"]).body
    path = f"/api/cart/carts/{cart['cart_id']}/items/"

    too_many = live.http.post(path, {"service_id": service["service_id"], "quantity": 2}, headers=user["headers"])
    assert_json_error(too_many, 409, "amount_too_large")
    assert live.http.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"]).body["items"] == []

    one = live.http.post(path, {"service_id": service["service_id"], "quantity": 1}, headers=user["headers"])
    assert one.status == 201, one
    other = live.http.post("/api/services/", {"name": "Dinghy", "price": "1.00", "duration_minutes": 60},
                           headers=admin).body
    over = live.http.post(path, {"service_id": other["service_id"], "quantity": 1}, headers=user["headers"])
    assert_json_error(over, 409, "amount_too_large")


def test_an_email_that_lower_cases_past_254_characters_is_a_400_not_a_500(live):
    email = "\u0130" * 200 + "@example.com"  # 212 characters; lower-cased, 412
    for path in ("/api/auth/register", "/api/auth/token"):
        answer = live.http.post(path, {"email": email, "password": "correct-horse"})

        assert_json_error(answer, 400)
        assert "email" in answer.body["fields"], answer


def test_numbers_and_ids_in_anything_but_their_plain_form_are_refused(live):
    admin = live.api.admin_headers()
    user = live.api.register()
    arabic = live.http.post("/api/services/", {"name": "X", "price": "\u0662\u0665\u0660\u0660", "duration_minutes": 60},
                            headers=admin)
    assert_json_error(arabic, 400)
    assert "price" in arabic.body["fields"]

    cart = live.http.post("/api/cart/carts/", {}, headers=user["headers"]).body
    for service_id in ("urn:" + uuid.uuid4().hex, str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}"):
        answer = live.http.post(f"/api/cart/carts/{cart['cart_id']}/items/",
                                {"service_id": service_id, "quantity": 1}, headers=user["headers"])
        assert_json_error(answer, 400)
        assert "service_id" in answer.body["fields"], answer


def test_bodies_of_whitespace_or_with_a_byte_order_mark_are_malformed(live):
    user = live.api.register()
    for raw in (b"   ", b"\r\n\t ", b"\xef\xbb\xbf{}"):
        answer = live.http.post("/api/cart/carts/", raw=raw, headers={**user["headers"],
                                                                    "Content-Type": "application/json"})
        assert_json_error(answer, 400)
    assert carts_of(live, user) == []


def test_a_body_sent_as_anything_but_json_is_a_415(live):
    user = live.api.register()
    for media_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = live.http.post("/api/cart/carts/", raw=b"{}", headers={**user["headers"],
                                                                      "Content-Type": media_type})
        assert_json_error(answer, 415)
    assert carts_of(live, user) == []


def test_options_answers_an_allow_header_and_no_html(live):
    for path in ("/api/payments/", "/api/cart/carts/", "/healthz", "/api/payments/webhook/"):
        answer = live.http.request("OPTIONS", path)

        assert answer.status == 204, answer
        assert answer.text == "" and "text/html" not in answer.headers.get("content-type", ""), answer
        assert "OPTIONS" in answer.headers["allow"], answer


def test_any_method_but_post_on_the_webhook_is_a_405(live):
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        answer = live.http.request(method, "/api/payments/webhook/")

        assert_json_error(answer, 405)
        assert answer.headers["allow"] == "POST, OPTIONS", answer
