"""The recommended production set-up over real sockets: nginx (deploy/nginx.conf) in front of 3 sync workers.

Slow clients must not stall it, and whatever the HTTP server refuses by itself is refused in the
service's JSON error envelope (SPEC §2). Each test but the last three (guards that nginx lets good
requests, the API reference page and the app's own errors through) fails against gunicorn alone: its
sync workers wait on slow clients, and it answers malformed requests with HTML pages.
"""

import json
import socket
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.e2e.front import NginxFront, nginx_missing
from tests.e2e.helpers import Api, Http
from tests.e2e.service import Live, live_service
from tests.skips import skip_or_fail

SLOW_CLIENTS = 50
HEALTHZ_SAMPLES = 7
HEALTHZ_BUDGET_MS = 100
SOCKET_TIMEOUT_SECONDS = 10
HOST = b"Host: 127.0.0.1\r\n"


@dataclass
class Front:
    http: Http
    api: Api
    port: int
    live: Live


@pytest.fixture(scope="module")
def front(postgres_server, tmp_path_factory):
    """gunicorn as tests/e2e/service.py starts it (3 workers, PostgreSQL), behind the repository's nginx config."""
    missing = nginx_missing()
    if missing is not None:
        skip_or_fail(missing)
    with live_service(postgres_server, tmp_path_factory.mktemp("front")) as live:
        nginx = NginxFront(live.server.port).start()
        try:
            yield Front(nginx.http, Api(nginx.http, live.api.admin_email), nginx.port, live)
        finally:
            nginx.stop()


@dataclass
class RawAnswer:
    status: int | None
    headers: dict
    body: bytes

    def __repr__(self) -> str:
        return f"RawAnswer({self.status}, {self.headers.get('content-type')}, {self.body[:200]!r})"


def send_raw(port: int, data: bytes) -> RawAnswer:
    """Send bytes as they are and read the answer (the server may answer, and close, before it has read them all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_SECONDS) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
            head, separator, body = received.partition(b"\r\n\r\n")
            length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            if separator and length and len(body) >= int(length[0].split(b":")[1]):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ")
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return RawAnswer(status, headers, body)


def assert_json_envelope(answer: RawAnswer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    body = json.loads(answer.body)
    assert isinstance(body["error"], str) and body["error"], answer
    assert isinstance(body["detail"], str) and body["detail"], answer


def get_healthz_with(header: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\n" + HOST + header + b"\r\nConnection: close\r\n\r\n"


def post_token_with(headers: bytes, body: bytes = b"") -> bytes:
    return (b"POST /api/auth/token HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n" + headers
            + b"Connection: close\r\n\r\n" + body)


def chunked(payload: bytes, chunk_size: int = 4096) -> bytes:
    pieces = [payload[i:i + chunk_size] for i in range(0, len(payload), chunk_size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@contextmanager
def slow_clients(port: int, count: int):
    """`count` connections that never finish a request: idle, a header byte a second, a body byte a second."""
    stop = threading.Event()
    connected = []

    def hold(kind: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                connected.append(kind)
                if kind == 1:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
                elif kind == 2:
                    sock.sendall(post_token_with(b"Content-Length: 1000\r\n"))
                while not stop.wait(1.0):
                    if kind:
                        sock.sendall(b"X" if kind == 1 else b" ")
        except OSError:
            pass  # the server gave up on a slow client: allowed

    threads = [threading.Thread(target=hold, args=(i % 3,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # every client connected and sent its first bytes
        assert len(connected) == count, f"only {len(connected)} of {count} slow clients connected"
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def test_fifty_slow_clients_leave_healthz_fast_and_payments_confirming(front):
    user = front.api.register()
    carts = [front.api.make_cart(user) for _ in range(3)]
    with slow_clients(front.port, SLOW_CLIENTS):
        latencies_ms = []
        for _ in range(HEALTHZ_SAMPLES):
            started = time.perf_counter()
            answer = front.http.get("/healthz", timeout=2)
            latencies_ms.append((time.perf_counter() - started) * 1000)
            assert answer.status == 200, answer
        assert statistics.median(latencies_ms) < HEALTHZ_BUDGET_MS, latencies_ms
        for cart_id in carts:
            payment = front.api.start_payment(user, cart_id)
            assert payment.status == 201, payment
            confirmed = front.api.confirm(user, payment.body, timeout=5)
            assert confirmed.status == 200, confirmed
            assert confirmed.body["payment"]["status"] == "SUCCESS", confirmed


MALFORMED = {
    "a control character in a header value": (get_healthz_with(b"X-Request-ID: a\x01b"), 400),
    "a control character in the Authorization header": (
        b"GET /api/cart/carts/ HTTP/1.1\r\n" + HOST + b"Authorization: Bearer a\x01b\r\nConnection: close\r\n\r\n",
        400),
    "DEL in a header value": (get_healthz_with(b"X-Anything: a\x7fb"), 400),
    "a header over 8 KB": (get_healthz_with(b"X-Big: " + b"a" * 9000), 431),
    "a request line over 4 KB": (
        b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n", 414),
    "a bad request line": (b"GARBAGE\r\n\r\n", 400),
    "a lower-case method": (b"get /healthz HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n", 400),
    "a bad HTTP version": (b"GET / HTTP/9.9\r\n" + HOST + b"Connection: close\r\n\r\n", 400),
    "a byte over 0x7E in the request target": (
        b"GET /he\xffalthz HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n", 400),
    "a negative Content-Length": (post_token_with(b"Content-Length: -1\r\n"), 400),
    "two different Content-Lengths": (post_token_with(b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}"), 400),
    "more header lines than gunicorn takes": (
        get_healthz_with(b"".join(b"X-Line-%d: 1\r\n" % i for i in range(120)).rstrip(b"\r\n")), 431),
    "a body over 64 KiB, chunked": (
        post_token_with(b"Transfer-Encoding: chunked\r\n", chunked(b'{"email": "' + b"a" * 70_000 + b'"}')), 413),
    "a malformed chunk size": (post_token_with(b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"), 400),
}


@pytest.mark.parametrize("request_bytes, status", MALFORMED.values(), ids=MALFORMED.keys())
def test_what_the_http_server_refuses_is_refused_in_the_json_envelope(front, request_bytes, status):
    assert_json_envelope(send_raw(front.port, request_bytes), status)


def test_a_chunked_body_within_64_kib_reaches_the_app_whole(front):
    user = front.api.register()
    body = json.dumps({"email": user["email"], "password": "correct-horse"}).encode() + b" " * 60_000
    answer = send_raw(front.port, post_token_with(b"Transfer-Encoding: chunked\r\n", chunked(body)))
    assert answer.status == 200, answer
    assert "token" in json.loads(answer.body)


def test_the_apps_own_errors_pass_through_unchanged(front):
    """nginx replaces only its own error pages: the app's JSON errors keep their body and request id."""
    answer = front.http.get("/api/cart/carts/", headers={"X-Request-ID": "front-check-1"})
    assert answer.status == 401, answer
    assert answer.is_json and answer.body["error"], answer
    assert answer.headers.get("x-request-id") == "front-check-1", answer


def test_the_api_reference_and_its_files_pass_through_as_the_app_answers_them(front):
    """/docs, the one HTML page, and Swagger UI's files reach the browser as gunicorn gives them."""
    for path in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        through_front, direct = front.http.get(path), front.live.server.http.get(path)
        assert through_front.status == 200, (path, through_front)
        assert through_front.text == direct.text, path
        for header in ("content-type", "content-security-policy", "x-content-type-options"):
            assert through_front.headers.get(header) == direct.headers.get(header), (path, header)
    assert front.http.get("/docs").headers["content-type"].startswith("text/html")
    missing = front.http.get("/docs/assets/nope.js")
    assert missing.status == 404 and missing.is_json, missing
