"""A local Razorpay: the part of its HTTP API the service uses, in memory, failing on demand.

Start it with one command, from the repository's root:

    python -m tests.razorpay_sandbox --port 9010

and run the service against it with GATEWAY=razorpay,
RAZORPAY_BASE_URL=http://127.0.0.1:9010 and the key pair and webhook secret
it prints. Tests start it on a free port with `running()`.

The API, written from Razorpay's public reference; Basic auth with the key
pair; amounts in paise; errors as Razorpay's `{"error": {"code":
"BAD_REQUEST_ERROR", "description", ...}}` (an unknown id is a 400, as there):

    POST /v1/orders                  {amount, currency, receipt?, notes?}  -> order
    GET  /v1/orders/{id}/payments                                          -> collection of payments
    POST /v1/payments/{id}/refund    {amount?, receipt?, notes?, speed?}   -> refund
    GET  /v1/payments/{id}/refunds   ?count=(1-100, default 10)&skip=      -> collection of refunds, newest first

Controls, no auth, JSON in and out:

    POST /_sandbox/orders/{id}/payments  {payment_id?, status?: captured|authorized|failed}
         a customer pays the order -> {"payment", "razorpay_order_id", "razorpay_payment_id",
         "razorpay_signature"} (what Checkout hands the browser, for the confirm)
    POST /_sandbox/faults  {fault: timeout|5xx|4xx|lost_answer, operation?, times?, status?, seconds?}
         the next `times` (1) calls of `operation` (create_order, order_payments, refund, payment_refunds;
         any if absent) fail: timeout sleeps `seconds` (15) and closes unanswered, doing nothing; 5xx and
         4xx answer `status` (500, 400) with Razorpay's error body, doing nothing; lost_answer does the call
         and closes the connection without an answer
    POST /_sandbox/refunds/{id}/settle  {status: processed|failed}   settle a pending refund
    POST /_sandbox/webhooks  {event, id, event_id?, deliver_to?}
         Razorpay's webhook for an event of a payment (payment.captured, payment.failed, payment.authorized,
         order.paid) or a refund (refund.created, refund.processed, refund.failed) by its id, as Razorpay sends
         it: -> {"event_id", "headers" (X-Razorpay-Signature, X-Razorpay-Event-Id), "body" (the raw JSON signed
         with the webhook secret)}; with deliver_to (the service's webhook URL) also POSTed there, its answer
         in "delivered": {"status", "body"}. The same event_id again is Razorpay's retry of that event
    POST /_sandbox/settings  {refund_status: processed|pending}      what new refunds become
    GET  /_sandbox/state     every order, payment, refund and /v1 call received
    POST /_sandbox/reset     forget everything
"""

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_KEY_ID = "rzp_test_sandbox"
DEFAULT_KEY_SECRET = "sandbox_key_secret"
DEFAULT_WEBHOOK_SECRET = "sandbox_webhook_secret"
ACCOUNT_ID = "acc_Sandbox0000001"
OPERATIONS = ("create_order", "order_payments", "refund", "payment_refunds")
FAULTS = ("timeout", "5xx", "4xx", "lost_answer")
MIN_AMOUNT = 100  # Razorpay's least order or refund: INR 1.00
MAX_NOTES = 15
_ID_ALPHABET = string.ascii_letters + string.digits


class ApiError(Exception):
    """An answer in Razorpay's error shape."""

    def __init__(self, description: str, *, status: int = 400, code: str = "BAD_REQUEST_ERROR",
                 field: str | None = None):
        super().__init__(description)
        self.status = status
        # Razorpay says where a refusal of a field came from; of anything else, "NA".
        where = {"source": "business", "step": "payment_initiation", "reason": "input_validation_failed",
                 "field": field} if field else {"source": "NA", "step": "NA", "reason": "NA"}
        self.body = {"error": {"code": code, "description": description, **where, "metadata": {}}}


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(14))


def _notes(body: dict) -> dict | list:
    notes = body.get("notes", {})
    if not isinstance(notes, dict) or len(notes) > MAX_NOTES or not all(
            isinstance(v, str | int | float) and len(str(v)) <= 256 for v in notes.values()):
        raise ApiError("The notes should be a key-value object of at most 15 pairs.", field="notes")
    return notes or []  # Razorpay answers empty notes as []


def _receipt(body: dict) -> str | None:
    receipt = body.get("receipt")
    if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
        raise ApiError("The receipt may not be greater than 40 characters.", field="receipt")
    return receipt


def _amount(value, currency: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError("The amount must be an integer.", field="amount")
    if value < MIN_AMOUNT:
        raise ApiError(f"The amount must be at least {currency} 1.00", field="amount")
    return value


# The webhook events the sandbox sends: the entity each is about, and the state that entity must be in (field,
# value) for Razorpay to send it.
WEBHOOK_EVENTS = {
    "payment.authorized": ("payment", None),
    "payment.captured": ("payment", ("captured", True)),
    "payment.failed": ("payment", ("status", "failed")),
    "order.paid": ("payment", ("captured", True)),
    "refund.created": ("refund", None),
    "refund.processed": ("refund", ("status", "processed")),
    "refund.failed": ("refund", ("status", "failed")),
}


def event_body(event: str, *, payment: dict | None = None, refund: dict | None = None, order: dict | None = None,
               created_at: int | None = None) -> dict:
    """A webhook event in Razorpay's shape, each entity it contains under `payload.<name>.entity`."""
    payload = {name: {"entity": entity} for name, entity in (("refund", refund), ("payment", payment),
                                                             ("order", order)) if entity is not None}
    return {"entity": "event", "account_id": ACCOUNT_ID, "event": event, "contains": list(payload),
            "payload": payload, "created_at": int(time.time()) if created_at is None else created_at}


def webhook_signature(raw: bytes, secret: str) -> str:
    """Razorpay's X-Razorpay-Signature: hex HMAC-SHA256 of the raw body with the webhook secret."""
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def webhook_request(body: dict, secret: str, event_id: str | None = None) -> dict:
    """What Razorpay POSTs: {"event_id", "headers", "body" (the raw JSON text it signed)}."""
    raw = json.dumps(body)
    event_id = event_id or _new_id("")
    return {"event_id": event_id, "body": raw, "headers": {
        "Content-Type": "application/json", "X-Razorpay-Event-Id": event_id,
        "X-Razorpay-Signature": webhook_signature(raw.encode(), secret)}}


def _deliver(url: str, made: dict) -> dict:
    request = urllib.request.Request(url, data=made["body"].encode(), headers=made["headers"], method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"The webhook could not be delivered to {url}: {exc}", field="deliver_to") from None
    try:
        return {"status": status, "body": json.loads(raw)}
    except ValueError:
        return {"status": status, "body": raw.decode("utf-8", "replace")}


@dataclass
class Fault:
    fault: str
    operation: str | None = None
    status: int | None = None
    seconds: float = 15.0


@dataclass
class Sandbox:
    """The state behind the HTTP API, and the controls; thread-safe."""

    key_id: str = DEFAULT_KEY_ID
    key_secret: str = DEFAULT_KEY_SECRET
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET
    orders: dict[str, dict] = field(default_factory=dict)
    payments: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    refund_status: str = "processed"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # --- Razorpay's API -------------------------------------------------------------------------------------------

    def create_order(self, body: dict) -> dict:
        currency = body.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise ApiError("The currency field is required.", field="currency")
        amount = _amount(body.get("amount"), currency)
        order = {"id": _new_id("order_"), "entity": "order", "amount": amount, "amount_paid": 0,
                 "amount_due": amount, "currency": currency, "receipt": _receipt(body), "offer_id": None,
                 "status": "created", "attempts": 0, "notes": _notes(body), "created_at": int(time.time())}
        with self.lock:
            self.orders[order["id"]] = order
        return order

    def order_payments(self, order_id: str) -> dict:
        with self.lock:
            self._order(order_id)
            return _collection([p for p in self.payments.values() if p["order_id"] == order_id])

    def refund(self, payment_id: str, body: dict) -> dict:
        with self.lock:
            payment = self._payment(payment_id)
            if payment["status"] == "refunded":
                raise ApiError("The payment has been fully refunded already")
            if payment["status"] != "captured":
                raise ApiError("The payment status should be captured for action to be taken")
            left = payment["amount"] - payment["amount_refunded"]
            amount = _amount(body.get("amount", left), payment["currency"])
            if amount > left:
                raise ApiError("The refund amount provided is greater than amount captured", field="amount")
            refund = {"id": _new_id("rfnd_"), "entity": "refund", "amount": amount,
                      "currency": payment["currency"], "payment_id": payment_id, "notes": _notes(body),
                      "receipt": _receipt(body), "acquirer_data": {"arn": None}, "created_at": int(time.time()),
                      "batch_id": None, "status": self.refund_status, "speed_processed": "normal",
                      "speed_requested": body.get("speed", "normal")}
            self.refunds[refund["id"]] = refund
            payment["amount_refunded"] += amount
            full = payment["amount_refunded"] == payment["amount"]
            payment["refund_status"] = "full" if full else "partial"
            if full:
                payment["status"] = "refunded"
            return refund

    def payment_refunds(self, payment_id: str, query: dict) -> dict:
        count, skip = _whole(query, "count", 10, 1, 100), _whole(query, "skip", 0, 0, None)
        with self.lock:
            self._payment(payment_id)
            # Newest first: the refunds were made in the dict's order (created_at counts whole seconds only).
            newest_first = [r for r in reversed(self.refunds.values()) if r["payment_id"] == payment_id]
            return _collection(newest_first[skip:skip + count])

    # --- Controls ---------------------------------------------------------------------------------------------------

    def pay(self, order_id: str, payment_id: str | None = None, status: str = "captured") -> dict:
        """A customer pays the order; returns what Checkout hands the browser, signed with the key secret."""
        if status not in ("captured", "authorized", "failed"):
            raise ApiError("status must be captured, authorized or failed", field="status")
        if not isinstance(payment_id, str | None):
            raise ApiError("payment_id must be a string", field="payment_id")
        with self.lock:
            order = self._order(order_id)
            payment_id = payment_id or _new_id("pay_")
            if payment_id in self.payments:
                raise ApiError(f"{payment_id} exists already", field="payment_id")
            payment = {"id": payment_id, "entity": "payment", "amount": order["amount"],
                       "currency": order["currency"], "status": status, "order_id": order_id, "invoice_id": None,
                       "international": False, "method": "card", "amount_refunded": 0, "refund_status": None,
                       "captured": status == "captured", "description": None, "email": "void@example.com",
                       "contact": "+919999999999", "notes": [], "fee": None, "tax": None,
                       "error_code": "BAD_REQUEST_ERROR" if status == "failed" else None,
                       "created_at": int(time.time())}
            self.payments[payment_id] = payment
            if status == "captured":
                order.update(status="paid", amount_paid=order["amount"], amount_due=0)
            else:
                order.update(status="attempted")
            order["attempts"] += 1
        return {"payment": payment, "razorpay_order_id": order_id, "razorpay_payment_id": payment_id,
                "razorpay_signature": self.signature(order_id, payment_id)}

    def signature(self, order_id: str, payment_id: str) -> str:
        """Razorpay's payment signature: hex HMAC-SHA256 of "order_id|payment_id" with the key secret."""
        return hmac.new(self.key_secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()

    def fail_next(self, fault: str, *, operation: str | None = None, times: int = 1, status: int | None = None,
                  seconds: float = 15.0) -> None:
        """Make the next `times` calls of `operation` (or of any) fail with `fault`."""
        if (fault not in FAULTS or operation not in (None, *OPERATIONS) or not isinstance(times, int) or times < 1
                or not isinstance(seconds, int | float) or not isinstance(status, int | None)):
            raise ApiError(f"fault must be one of {FAULTS}, operation one of {OPERATIONS}, times at least 1, "
                           "seconds a number, status a whole number")
        with self.lock:
            self.faults += [Fault(fault, operation, status, float(seconds)) for _ in range(times)]

    def settle(self, refund_id: str, status: str) -> dict:
        if status not in ("processed", "failed"):
            raise ApiError("status must be processed or failed", field="status")
        with self.lock:
            refund = self.refunds.get(refund_id)
            if refund is None:
                raise ApiError("The id provided does not exist")
            if refund["status"] != "pending":
                raise ApiError(f"The refund is {refund['status']}, not pending")
            refund["status"] = status
            if status == "failed":  # the money stays with the merchant: the payment may be refunded again
                payment = self.payments[refund["payment_id"]]
                payment["amount_refunded"] -= refund["amount"]
                payment["status"] = "captured"
                payment["refund_status"] = "partial" if payment["amount_refunded"] else None
            return refund

    def webhook(self, event: str, entity_id: str, event_id: str | None = None) -> dict:
        """Razorpay's webhook request for `event` of the payment or refund `entity_id` (see webhook_request)."""
        if event not in WEBHOOK_EVENTS or not isinstance(entity_id, str) or not isinstance(event_id, str | None):
            raise ApiError(f"event must be one of {tuple(WEBHOOK_EVENTS)}, id a payment's or refund's id, event_id "
                           "a string", field="event")
        about, needs = WEBHOOK_EVENTS[event]
        with self.lock:
            if about == "refund":
                if entity_id not in self.refunds:
                    raise ApiError("The id provided does not exist", field="id")
                refund = dict(self.refunds[entity_id])
                payment = dict(self.payments[refund["payment_id"]])
            else:
                refund, payment = None, dict(self._payment(entity_id))
            order = dict(self.orders[payment["order_id"]]) if event == "order.paid" else None
        entity = refund if about == "refund" else payment
        if needs is not None and entity[needs[0]] != needs[1]:
            raise ApiError(f"Razorpay sends {event} only when the {about}'s {needs[0]} is {needs[1]}, not "
                           f"{entity[needs[0]]}", field="event")
        return webhook_request(event_body(event, payment=payment, refund=refund, order=order), self.webhook_secret,
                               event_id)

    def send_webhook(self, body: dict) -> dict:
        """The /_sandbox/webhooks control: build the webhook, and deliver it where asked."""
        made = self.webhook(body.get("event"), body.get("id"), body.get("event_id"))
        url = body.get("deliver_to")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ApiError("deliver_to must be an http(s) URL", field="deliver_to")
            made["delivered"] = _deliver(url, made)
        return made

    def configure(self, refund_status: str) -> None:
        if refund_status not in ("processed", "pending"):
            raise ApiError("refund_status must be processed or pending", field="refund_status")
        with self.lock:
            self.refund_status = refund_status

    def state(self) -> dict:
        with self.lock:
            held = {"orders": list(self.orders.values()), "payments": list(self.payments.values()),
                    "refunds": list(self.refunds.values()), "calls": self.calls}
            return json.loads(json.dumps(held))  # a copy, not the live state

    def reset(self) -> None:
        with self.lock:
            for held in (self.orders, self.payments, self.refunds):
                held.clear()
            self.calls.clear()
            self.faults.clear()
            self.refund_status = "processed"

    # --- Used by the handler ----------------------------------------------------------------------------------------

    def record_call(self, method: str, path: str, operation: str, body, query: dict) -> Fault | None:
        """Note a /v1 call and take the first fault waiting for its operation, if any."""
        with self.lock:
            self.calls.append({"method": method, "path": path, "operation": operation, "body": body,
                               "query": query})
            for i, fault in enumerate(self.faults):
                if fault.operation in (None, operation):
                    return self.faults.pop(i)
        return None

    def authorised(self, header: str | None) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        return hmac.compare_digest(expected.encode(), (header or "").encode("utf-8", "replace"))

    def _order(self, order_id: str) -> dict:
        if order_id not in self.orders:
            raise ApiError("The id provided does not exist")
        return self.orders[order_id]

    def _payment(self, payment_id: str) -> dict:
        if payment_id not in self.payments:
            raise ApiError("The id provided does not exist")
        return self.payments[payment_id]


def _collection(items: list[dict]) -> dict:
    return {"entity": "collection", "count": len(items), "items": items}


def _whole(query: dict, name: str, default: int, least: int, most: int | None) -> int:
    raw = query.get(name, str(default))
    if not raw.isascii() or not raw.isdigit() or int(raw) < least or (most is not None and int(raw) > most):
        raise ApiError(f"The {name} must be a whole number from {least}" + (f" to {most}." if most else "."),
                       field=name)
    return int(raw)


# (method, path pattern, operation) of Razorpay's API; the operation names the call for faults.
ROUTES = (
    ("POST", re.compile(r"/v1/orders"), "create_order"),
    ("GET", re.compile(r"/v1/orders/([^/]+)/payments"), "order_payments"),
    ("POST", re.compile(r"/v1/payments/([^/]+)/refund"), "refund"),
    ("GET", re.compile(r"/v1/payments/([^/]+)/refunds"), "payment_refunds"),
)
CONTROLS = (
    ("POST", re.compile(r"/_sandbox/orders/([^/]+)/payments"),
     lambda s, body, order_id: s.pay(order_id, body.get("payment_id"), body.get("status", "captured"))),
    ("POST", re.compile(r"/_sandbox/faults"),
     lambda s, body: s.fail_next(body.get("fault"), operation=body.get("operation"), times=body.get("times", 1),
                                 status=body.get("status"), seconds=body.get("seconds", 15.0)) or {"ok": True}),
    ("POST", re.compile(r"/_sandbox/refunds/([^/]+)/settle"),
     lambda s, body, refund_id: s.settle(refund_id, body.get("status"))),
    ("POST", re.compile(r"/_sandbox/webhooks"), lambda s, body: s.send_webhook(body)),
    ("POST", re.compile(r"/_sandbox/settings"),
     lambda s, body: s.configure(body.get("refund_status")) or {"ok": True}),
    ("GET", re.compile(r"/_sandbox/state"), lambda s, body: s.state()),
    ("POST", re.compile(r"/_sandbox/reset"), lambda s, body: s.reset() or {"ok": True}),
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm each answer waited ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: "SandboxServer"

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = self._body()
            for verb, pattern, control in CONTROLS:
                if verb == method and (match := pattern.fullmatch(parts.path)):
                    if not isinstance(body, dict):
                        raise ApiError("The request body must be a JSON object.")
                    return self._answer(200, control(sandbox, body, *match.groups()))
            for verb, pattern, operation in ROUTES:
                if verb == method and (match := pattern.fullmatch(parts.path)):
                    return self._call(operation, body, query, *match.groups())
            raise ApiError("The requested URL was not found on the server.", status=404)
        except ApiError as exc:
            self._answer(exc.status, exc.body)

    def _call(self, operation: str, body, query: dict, *ids: str) -> None:
        sandbox = self.server.sandbox
        fault = sandbox.record_call(self.command, urlsplit(self.path).path, operation, body, query)
        if fault and fault.fault == "timeout":
            time.sleep(fault.seconds)
            self.close_connection = True
            return
        if fault and fault.fault in ("5xx", "4xx"):
            status = fault.status or (500 if fault.fault == "5xx" else 400)
            error = ApiError("The server encountered an error. The incident has been reported to admins.",
                             status=status, code="SERVER_ERROR") if fault.fault == "5xx" else \
                ApiError("Refused by the sandbox, as it was told to.", status=status)
            raise error
        if not sandbox.authorised(self.headers.get("Authorization")):
            raise ApiError("Authentication failed", status=401)
        if not isinstance(body, dict):
            raise ApiError("The request body must be a JSON object.")
        answer = {
            "create_order": lambda: sandbox.create_order(body),
            "order_payments": lambda: sandbox.order_payments(*ids),
            "refund": lambda: sandbox.refund(*ids, body),
            "payment_refunds": lambda: sandbox.payment_refunds(*ids, query),
        }[operation]()
        if fault and fault.fault == "lost_answer":
            self.close_connection = True  # done, and never told
            return
        self._answer(200, answer)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError("The request body is not valid JSON.") from None

    def _answer(self, status: int, body) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler sleeping out a timeout fault does not hold up the stop

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, quiet: bool):
        self.sandbox = sandbox
        self.quiet = quiet
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@contextmanager
def running(key_id: str = DEFAULT_KEY_ID, key_secret: str = DEFAULT_KEY_SECRET,
            webhook_secret: str = DEFAULT_WEBHOOK_SECRET, host: str = "127.0.0.1", port: int = 0,
            quiet: bool = True) -> Iterator[SandboxServer]:
    """A sandbox serving in a thread (on a free port unless given) until the block ends."""
    server = SandboxServer((host, port), Sandbox(key_id, key_secret, webhook_secret), quiet)
    thread = threading.Thread(target=server.serve_forever, name="razorpay-sandbox", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.razorpay_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9010)
    parser.add_argument("--key-id", default=DEFAULT_KEY_ID)
    parser.add_argument("--key-secret", default=DEFAULT_KEY_SECRET)
    parser.add_argument("--webhook-secret", default=DEFAULT_WEBHOOK_SECRET)
    args = parser.parse_args(argv)
    server = SandboxServer((args.host, args.port), Sandbox(args.key_id, args.key_secret, args.webhook_secret),
                           quiet=False)
    print(f"Razorpay sandbox on {server.url}; run the service with\n"
          f"  GATEWAY=razorpay RAZORPAY_BASE_URL={server.url} RAZORPAY_KEY_ID={args.key_id} "
          f"RAZORPAY_KEY_SECRET={args.key_secret} RAZORPAY_WEBHOOK_SECRET={args.webhook_secret}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
