"""Driving a live server over HTTP from many threads, and checking the database afterwards.

Standard library only: urllib for requests, threads for concurrency. Every
request has a timeout and every loop a bound, and only 127.0.0.1 is spoken to.
"""

import hashlib
import hmac
import http.client
import itertools
import json
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Engine, text

from machines import CART_MACHINE, PAYMENT_MACHINE, REFUND_MACHINE, InvalidTransition

REQUEST_TIMEOUT_SECONDS = 30
GATEWAY_SECRET = "e2e-gateway-secret"
WEBHOOK_SECRET = "e2e-webhook-secret"
ADMIN_PASSWORD = "e2e-admin-password"

_seq = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Answer:
    """One HTTP answer; `status` is None when the connection failed before an answer came."""

    status: int | None
    body: object = None
    headers: dict = field(default_factory=dict)
    text: str = ""
    error: str | None = None

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json") and self.body is not None

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.text[:300] if self.status else self.error})"


class Http:
    """A tiny JSON client for one loopback server."""

    def __init__(self, base: str):
        assert base.startswith("http://127.0.0.1:"), base
        self.base = base

    def request(self, method: str, path: str, body=None, *, headers: dict | None = None,
                raw: bytes | None = None, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})} if data is not None else \
            dict(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return _answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _answer(exc.code, exc.headers, exc.read())
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            return Answer(None, error=f"{type(exc).__name__}: {exc}")

    def get(self, path, **kw) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw) -> Answer:
        return self.request("POST", path, body, **kw)


def _answer(status: int, headers, raw: bytes) -> Answer:
    lowered = {k.lower(): v for k, v in headers.items()}
    text_body = raw.decode("utf-8", "replace")
    parsed = None
    if lowered.get("content-type", "").startswith("application/json"):
        try:
            parsed = json.loads(text_body)
        except ValueError:
            parsed = None
    return Answer(status, parsed, lowered, text_body)


def sign_payment(provider_order_id: str, provider_payment_id: str, secret: str = GATEWAY_SECRET) -> str:
    """The gateway's signature, computed here from the spec rather than by the service's code."""
    message = f"{provider_order_id}|{provider_payment_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_webhook(raw: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class Api:
    """The service's API as a customer, an admin and the gateway use it."""

    def __init__(self, http: Http, admin_email: str):
        self.http = http
        self.admin_email = admin_email
        self._admin_headers: dict | None = None
        self._service_id: str | None = None

    # Accounts and catalogue
    def register(self) -> dict:
        email = f"e2e-{next(_seq)}-{uuid.uuid4().hex[:8]}@example.com"
        answer = self.http.post("/api/auth/register", {"email": email, "password": "correct-horse"})
        assert answer.status == 201, answer
        return {**answer.body, "headers": {"Authorization": f"Bearer {answer.body['token']}"}}

    def admin_headers(self) -> dict:
        if self._admin_headers is None:
            answer = self.http.post("/api/auth/token", {"email": self.admin_email, "password": ADMIN_PASSWORD})
            assert answer.status == 200, answer
            self._admin_headers = {"Authorization": f"Bearer {answer.body['token']}"}
        return self._admin_headers

    def service_id(self) -> str:
        """One catalogue service, made once per server."""
        if self._service_id is None:
            answer = self.http.post("/api/services/", {"name": "E2E wash", "price": "2500.00",
                                                       "duration_minutes": 60}, headers=self.admin_headers())
            assert answer.status == 201, answer
            self._service_id = answer.body["service_id"]
        return self._service_id

    # Carts and payments
    def make_cart(self, user: dict, quantity: int = 1) -> str:
        slot = {"selected_date": (date.today() + timedelta(days=30)).isoformat(), "selected_time": "10:30"}
        cart = self.http.post("/api/cart/carts/", slot, headers=user["headers"])
        assert cart.status == 201, cart
        added = self.http.post(f"/api/cart/carts/{cart.body['cart_id']}/items/",
                               {"service_id": self.service_id(), "quantity": quantity}, headers=user["headers"])
        assert added.status == 201, added
        return cart.body["cart_id"]

    def start_payment(self, user: dict, cart_id: str, key: str | None = None) -> Answer:
        headers = {**user["headers"], **({"Idempotency-Key": key} if key else {})}
        return self.http.post("/api/payments/", {"cart_id": cart_id}, headers=headers)

    def make_payment(self, user: dict, cart_id: str) -> dict:
        answer = self.start_payment(user, cart_id)
        assert answer.status == 201, answer
        assert answer.body["status"] == "PENDING", answer
        return answer.body

    def confirm(self, user: dict, payment: dict, provider_payment_id: str = "pay_e2e_1",
                timeout: float = REQUEST_TIMEOUT_SECONDS) -> Answer:
        body = {"provider_payment_id": provider_payment_id,
                "signature": sign_payment(payment["provider_order_id"], provider_payment_id)}
        return self.http.post(f"/api/payments/{payment['transaction_id']}/confirm/", body,
                              headers=user["headers"], timeout=timeout)

    def webhook(self, event: str, payment: dict, provider_payment_id: str = "pay_e2e_1",
                event_id: str | None = None) -> Answer:
        raw = json.dumps({"event_id": event_id or f"evt_{uuid.uuid4().hex}", "event": event,
                          "provider_order_id": payment["provider_order_id"],
                          "provider_payment_id": provider_payment_id}).encode()
        return self.http.post("/api/payments/webhook/", raw=raw,
                              headers={"Content-Type": "application/json", "X-Gateway-Signature": sign_webhook(raw)})

    def payment(self, user: dict, transaction_id: str) -> dict:
        answer = self.http.get(f"/api/payments/{transaction_id}/", headers=user["headers"])
        assert answer.status == 200, answer
        return answer.body

    def payment_history(self, user: dict, transaction_id: str) -> list[dict]:
        answer = self.http.get(f"/api/payments/{transaction_id}/history/", headers=user["headers"])
        assert answer.status == 200, answer
        return answer.body

    def bookings(self, user: dict) -> list[dict]:
        answer = self.http.get("/api/bookings/", headers=user["headers"])
        assert answer.status == 200, answer
        return answer.body


def at_once(calls: list[Callable[[], object]], timeout: float = 120) -> list:
    """Run every call in its own thread, released together by a barrier; results in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=timeout) for future in futures]


def statuses(answers: list[Answer]) -> list:
    return sorted((a.status for a in answers), key=lambda s: (s is None, s or 0))


# Checks on the database itself, after the fact.

def rows(engine: Engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def replay_errors(engine: Engine) -> list[str]:
    """Every entity's accepted history, replayed through its machine from the initial state, must end
    at its current status, each step being an allowed move."""
    problems = []
    machines = {"payment": PAYMENT_MACHINE, "cart": CART_MACHINE, "refund": REFUND_MACHINE}
    current = {("payment", r.transaction_id): r.status
               for r in rows(engine, "SELECT transaction_id, status FROM payments")}
    current.update({("cart", r.id): r.status for r in rows(engine, "SELECT id, status FROM carts")})
    current.update({("refund", r.id): r.status for r in rows(engine, "SELECT id, status FROM refunds")})
    replayed = {key: machines[key[0]].initial.value for key in current}
    for r in rows(engine, "SELECT entity, entity_id, from_state, to_state, trigger FROM transitions "
                          "WHERE accepted ORDER BY id"):
        key = (r.entity, r.entity_id)
        machine = machines.get(r.entity)
        if key not in replayed:
            problems.append(f"history for unknown {key}")
            continue
        if r.from_state != replayed[key]:
            problems.append(f"{key}: history says {r.trigger} from {r.from_state}, replay is at {replayed[key]}")
        try:
            to_state = machine.decide(r.trigger, r.from_state, verified=True, fresh_open_payments=0).value
        except InvalidTransition:
            problems.append(f"{key}: {r.trigger} from {r.from_state} is not in the table")
            continue
        if to_state != r.to_state:
            problems.append(f"{key}: {r.trigger} from {r.from_state} recorded to {r.to_state}, table says {to_state}")
        replayed[key] = r.to_state
    problems += [f"{key}: replay ends at {replayed[key]}, row is {status}"
                 for key, status in current.items() if replayed[key] != status]
    return problems


def consistency_errors(engine: Engine) -> list[str]:
    """What must hold after anything: a booking iff a SUCCESS payment, its cart CONVERTED, history exact."""
    checks = {
        "SUCCESS payment without a booking": """
            SELECT p.transaction_id FROM payments p LEFT JOIN bookings b ON b.transaction_id = p.transaction_id
            WHERE p.status = 'SUCCESS' AND b.id IS NULL""",
        "SUCCESS payment whose cart is not CONVERTED": """
            SELECT p.transaction_id FROM payments p JOIN carts c ON c.id = p.cart_id
            WHERE p.status = 'SUCCESS' AND c.status <> 'CONVERTED'""",
        "booking whose payment is not SUCCESS": """
            SELECT b.id FROM bookings b JOIN payments p ON p.transaction_id = b.transaction_id
            WHERE p.status <> 'SUCCESS'""",
        "booking of another cart than its payment's": """
            SELECT b.id FROM bookings b JOIN payments p ON p.transaction_id = b.transaction_id
            WHERE p.cart_id <> b.cart_id""",
        "CONVERTED cart without a booking": """
            SELECT c.id FROM carts c LEFT JOIN bookings b ON b.cart_id = c.id
            WHERE c.status = 'CONVERTED' AND b.id IS NULL""",
        "cart with more than one SUCCESS payment": """
            SELECT cart_id FROM payments WHERE status = 'SUCCESS' GROUP BY cart_id HAVING count(*) > 1""",
        "open payment on a CONVERTED cart": """
            SELECT p.transaction_id FROM payments p JOIN carts c ON c.id = p.cart_id
            WHERE c.status = 'CONVERTED' AND p.status IN ('INITIATED', 'PENDING')""",
        "DELETED cart with a booking": """
            SELECT c.id FROM carts c JOIN bookings b ON b.cart_id = c.id WHERE c.status = 'DELETED'""",
        "DELETED cart with an open or SUCCESS payment": """
            SELECT p.transaction_id FROM payments p JOIN carts c ON c.id = p.cart_id
            WHERE c.status = 'DELETED' AND p.status IN ('INITIATED', 'PENDING', 'SUCCESS')""",
        # SPEC §1: a captured provider payment ends in the booking it bought or in one refund, never both.
        # (Matched within the payment: tests reuse one provider_payment_id across orders, as no gateway does.)
        "refund of the capture that bought its payment's booking": """
            SELECT r.id FROM refunds r JOIN payments p ON p.transaction_id = r.transaction_id
            WHERE p.status = 'SUCCESS' AND p.provider_payment_id = r.provider_payment_id""",
    }
    problems = [f"{name}: {[tuple(r) for r in found]}" for name, sql in checks.items()
                if (found := rows(engine, sql))]
    return problems + replay_errors(engine)
