"""The OpenAPI 3.1 document, built from the pydantic models the code validates and answers with.

Every operation of SPEC §3 is one `Operation` below: its view (whose
docstring is the summary), what a reader needs to know beyond it (its
description), its request model (web/schemas.py), its answer
(web/responses.py), every other status it can answer with, and the `reason`
of each 409 it can give. Nothing here is hand-written JSON Schema: the schemas
come from `models_json_schema`; the examples are the README's walk-through
(web/openapi_examples.py). GET /docs renders this document (web/docs_page.py).
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from machines import CartStatus, RefundStatus
from machines.ids import UUID_PATTERN
from web import accounts_api, bookings_api, cart_deletion_api, carts_api, docs_page, ops_api, payments_api
from web import openapi_examples as examples
from web import refunds_api, services_api
from web import responses as out
from web import schemas as body
from web import webhooks_api
from web.webhook_formats import FORMATS, WebhookFormat

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi():
    """This document: every endpoint, its request and its answers."""
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_document(current_app.extensions["gateway"].name)
    return document


REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Many:
    """A JSON array of one model."""

    model: type[BaseModel]


@dataclass(frozen=True)
class OneOf:
    """Any one of several models (listed most specific first)."""

    models: tuple[type[BaseModel], ...]


TEXT = "text/plain"
HTML = "text/html"
NO_BODY = None  # an answer with no body at all (a 204)

Shape = type[BaseModel] | Many | OneOf | str | None


# What each 409 `reason` means; an operation's 409 lists those it can give (docs/API.md, "Reasons", says the same).
REASONS = {
    "email_taken": "the email already has an account.",
    "cart_not_active": "the cart is not ACTIVE (it became a booking, or was deleted).",
    "cart_locked_by_payment": "the cart has an open payment; cancel the payment first to change the cart.",
    "cart_empty": "the cart has no items.",
    "booking_slot_missing": "the cart has no `selected_date` and `selected_time`.",
    "amount_too_large": "a line or the total would pass 9999999999.99; nothing changed.",
    "cart_converted": "the cart became a booking (its `booking_id` is in the answer) and is kept.",
    "pending_payment_wait": "fresh open payments remain (the stale ones were cancelled all the same): the body says "
                            "how long to wait, and so does `Retry-After`.",
    "payment_not_pending": "the payment is no longer PENDING: the capture was refused and recorded, and a refund "
                           "of it requested (its `status` is in the answer).",
    "payment_not_open": "the payment is not open (INITIATED or PENDING) any more (its `status` is in the answer).",
    "idempotency_key_reused": "the Idempotency-Key was used before with another body.",
    "idempotency_key_in_progress": "the first request with this Idempotency-Key is still running; retry after "
                                   "`Retry-After` seconds.",
    "refund_not_failed": "the refund is not FAILED (its `status` is in the answer); nothing changed.",
    "state_conflict": "another request changed the resource while this one ran; read it again.",
}


@dataclass(frozen=True)
class Conflicts:
    """The 409s of an operation: the `reason` of each, and any other 409 body or header it has."""

    reasons: tuple[str, ...]
    also: tuple[type[BaseModel], ...] = ()  # 409 bodies of their own, each of one reason (DELETE's DeletionBlocked)
    headers: tuple[str, ...] = ()
    note: str = ""  # said after the list of reasons


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # path, query or header
    schema: dict
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    view: Callable
    tag: str
    ok: int
    answer: Shape
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    body_required: bool = True
    auth: bool = True
    params: tuple[Param, ...] = ()
    # Extra answers of this operation only: status -> (shape, description, headers).
    extra: dict = field(default_factory=dict)
    # What a reader needs beyond the summary: what happens, in a sentence or three (Markdown).
    description: str = ""
    conflicts: Conflicts | None = None

    @property
    def summary(self) -> str:
        """The view's docstring, one line."""
        return inspect.getdoc(self.view).partition("\n")[0]

    @property
    def operation_id(self) -> str:
        return f"{self.method}_{self.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"


# OpenAPI links: the ids a success answer hands to other operations (a stateful fuzzer follows them).
_CART = {"cart_id": "$response.body#/cart_id"}
_PAYMENT = {"transaction_id": "$response.body#/transaction_id"}
LINKS = {
    ("post", "/api/cart/carts/"): [(op, _CART) for op in (
        ("get", "/api/cart/carts/{cart_id}/"), ("patch", "/api/cart/carts/{cart_id}/"),
        ("post", "/api/cart/carts/{cart_id}/items/"), ("get", "/api/cart/carts/{cart_id}/history/"),
        ("get", "/api/cart/carts/{cart_id}/deletion_status/"),
        ("post", "/api/cart/carts/{cart_id}/cleanup_old_payments/"), ("delete", "/api/cart/carts/{cart_id}/"))],
    ("post", "/api/cart/carts/{cart_id}/items/"): [
        (("delete", "/api/cart/carts/{cart_id}/items/{item_id}/"),
         {**_CART, "item_id": "$response.body#/items/0/item_id"})],
    ("post", "/api/payments/"): [(op, _PAYMENT) for op in (
        ("get", "/api/payments/{transaction_id}/"), ("get", "/api/payments/{transaction_id}/history/"),
        ("post", "/api/payments/{transaction_id}/cancel/"), ("post", "/api/payments/{transaction_id}/confirm/"),
        ("get", "/api/payments/{transaction_id}/refunds/"))],
}


def _id(name: str, what: str) -> Param:
    return Param(name, "path", {"type": "string"}, True, f"The {what}; another user's is not found (404).")


CART_ID = _id("cart_id", "cart's id (UUID)")
ITEM_ID = _id("item_id", "item's id (UUID)")
TXN = _id("transaction_id", "payment's transaction id (TXN + 12 letters/digits)")
BOOKING_ID = _id("booking_id", "booking's id (UUID)")
REFUND_ID = Param("refund_id", "path", {"type": "string"}, True, "The refund's id (UUID).")
IDEMPOTENCY_KEY = Param("Idempotency-Key", "header", {"type": "string"}, False,
                        "1-255 visible ASCII characters, kept 24 hours; the same key and body replay the "
                        "first answer (201, 409 or 502).")
CART_STATUS = Param("status", "query", {"type": "string", "enum": [s.value for s in CartStatus]}, False,
                    "Only carts in this state (any other value is a 400).")

REFUND_STATUS = Param("status", "query", {"type": "string", "enum": [s.value for s in RefundStatus]}, False,
                      "Only refunds in this state (any other value is a 400).")
PAGE_LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": refunds_api.MAX_PAGE_SIZE,
                                      "default": refunds_api.DEFAULT_PAGE_SIZE}, False,
                   f"At most this many refunds (1-{refunds_api.MAX_PAGE_SIZE}, default "
                   f"{refunds_api.DEFAULT_PAGE_SIZE}); anything else is a 400.")
PAGE_BEFORE = Param("before", "query", {"type": "string", "pattern": UUID_PATTERN}, False,
                    "A refund_id: only the refunds after it in this newest-first order (the next page after the "
                    "one it ended). Not a UUID in canonical form, or no refund's id: a 400.")

W = (400, 401, 404, 413, 503)  # a write on an owned resource
CART_CHANGE = ("cart_not_active", "cart_locked_by_payment")

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/api/auth/register", accounts_api.register, "auth", 201, out.Registered,
              (400, 413, 503), body.Registration, auth=False,
              description="The email (at most 254 characters) is compared without regard to case; the password is "
                          "8 to 1024 characters. The answer holds a bearer token for every other call: send it as "
                          "`Authorization: Bearer <token>` (the Authorize button above does so here).",
              conflicts=Conflicts(("email_taken",))),
    Operation("post", "/api/auth/token", accounts_api.token, "auth", 200, out.Token, (400, 401, 413, 429, 503),
              body.Credentials, auth=False,
              description="Each login gives a new token. Failed logins are counted per email and per client "
                          "address; past either limit the answer is 429 with `Retry-After`, even for the right "
                          "password, until the window moves on; a successful login clears its email's count."),
    Operation("post", "/api/auth/logout", accounts_api.logout, "auth", 204, NO_BODY, (400, 401, 413, 503),
              body.Empty, body_required=False,
              description="Revokes the token it is sent with, at once on every process; the user's other tokens "
                          "keep working. An expired or revoked token is a 401; the answer has no body."),
    Operation("get", "/api/services/", services_api.list_services, "catalogue", 200, Many(out.ServiceOut), (503,),
              auth=False, description="Every service, by name: what a cart's items are made of."),
    Operation("post", "/api/services/", services_api.create_service, "catalogue", 201, out.ServiceOut,
              (400, 401, 403, 413, 503), body.NewService,
              description="Admins only (403 for anyone else); `flask --app web create-user EMAIL --password PW "
                          "--admin` makes one. The price is a decimal string; the duration 1-1440 minutes."),
    Operation("post", "/api/cart/carts/", carts_api.create_cart, "carts", 201, out.CartOut, (400, 401, 413, 503),
              body.Slot, body_required=False,
              description="Send `{}` (or no body) for a cart without a slot, or the slot now; a date before today "
                          "is a 400. The cart starts ACTIVE."),
    Operation("get", "/api/cart/carts/", carts_api.list_carts, "carts", 200, Many(out.CartOut), (400, 401, 503),
              params=(CART_STATUS,),
              description="Newest first. Without `status`, every cart but the DELETED ones."),
    Operation("get", "/api/cart/carts/{cart_id}/", carts_api.get_cart, "carts", 200, out.CartOut, (401, 404, 503),
              params=(CART_ID,), description="A deleted cart stays readable, with status DELETED."),
    Operation("patch", "/api/cart/carts/{cart_id}/", carts_api.set_slot, "carts", 200, out.CartOut, W, body.Slot,
              params=(CART_ID,),
              description="Send either field or both: only those sent change, and `null` clears one. A date before "
                          "today is a 400, and so is an empty body.",
              conflicts=Conflicts(CART_CHANGE)),
    Operation("delete", "/api/cart/carts/{cart_id}/", cart_deletion_api.delete_cart, "cart deletion", 200,
              out.CartDeleted, (400, 401, 404, 413, 503), body.Empty, body_required=False, params=(CART_ID,),
              description="First the cart's stale open payments (older than `PAYMENT_TIMEOUT_MINUTES`, 30 by "
                          "default) are cancelled, and stay cancelled whatever follows. Then, if fresh open "
                          "payments remain, the answer is 409 `pending_payment_wait` saying how long to wait "
                          "(`Retry-After`, `retry_after`); otherwise the cart becomes DELETED, and stays readable. "
                          "`auto_cleanup` says what was cancelled on the way.",
              conflicts=Conflicts(("cart_converted", "cart_not_active", "state_conflict"),
                                  also=(out.DeletionBlocked,), headers=("Retry-After",))),
    Operation("get", "/api/cart/carts/{cart_id}/deletion_status/", cart_deletion_api.deletion_status,
              "cart deletion", 200, out.DeletionStatus, (401, 404, 503), params=(CART_ID,),
              description="Read only: every payment of the cart, newest first, with its age, and `deletion_info`: "
                          "whether a DELETE would succeed now and, if not, why and how long to wait."),
    Operation("post", "/api/cart/carts/{cart_id}/cleanup_old_payments/", cart_deletion_api.cleanup_old_payments,
              "cart deletion", 200, out.CleanupResult, W, body.Empty, body_required=False, params=(CART_ID,),
              description="Cancels (trigger `timeout`) each open payment of the cart older than "
                          "`PAYMENT_TIMEOUT_MINUTES`, as the background sweep would, without deleting the cart; "
                          "then says whether it can be deleted now. Nothing to cancel is still a 200.",
              conflicts=Conflicts(("state_conflict",))),
    Operation("post", "/api/cart/carts/{cart_id}/items/", carts_api.add_item, "carts", 201, out.CartOut, W,
              body.NewItem, params=(CART_ID,),
              description="The line keeps the service's price of this moment. Adding a service already in the "
                          "cart adds to its quantity; more than 99 in all, or an unknown `service_id`, is a 400.",
              conflicts=Conflicts((*CART_CHANGE, "amount_too_large"))),
    Operation("delete", "/api/cart/carts/{cart_id}/items/{item_id}/", carts_api.remove_item, "carts", 200,
              out.CartOut, W, body.Empty, body_required=False, params=(CART_ID, ITEM_ID),
              description="The line leaves every view, total, payment and booking (removing it again is a 404); "
                          "adding the service again starts a new line at its current price.",
              conflicts=Conflicts(CART_CHANGE)),
    Operation("get", "/api/cart/carts/{cart_id}/history/", carts_api.cart_history, "carts", 200,
              Many(out.HistoryEntry), (401, 404, 503), params=(CART_ID,),
              description="Each recorded state change of the cart (`convert`, `delete`), with who made it and when."),
    Operation("post", "/api/payments/", payments_api.create_payment, "payments", 201, out.PaymentOut,
              (400, 401, 404, 413, 415, 502, 503), body.NewPayment, params=(IDEMPOTENCY_KEY,),
              description="The cart must be ACTIVE, have items and a slot. The payment is recorded INITIATED for "
                          "the cart's total, the gateway order is created (`provider_order_id`) and the payment "
                          "moves to PENDING; it must be confirmed before `expires_at`, or the sweep cancels it. A "
                          "cart may have several open payments (a second browser tab): the first one confirmed "
                          "wins and the others are superseded. If the gateway fails, 502: that payment stays "
                          "INITIATED and times out.",
              conflicts=Conflicts(("cart_not_active", "cart_empty", "booking_slot_missing", "amount_too_large",
                                   "payment_not_open", "idempotency_key_reused", "idempotency_key_in_progress",
                                   "state_conflict"), headers=("Retry-After",),
                                  note="`cart_not_active` and `payment_not_open` also come when the payment was "
                                       "closed while the gateway created its order (a sibling's capture superseded "
                                       "it, or it was cancelled or timed out). A 409 given after the payment was "
                                       "recorded is replayed for its Idempotency-Key like any other answer.")),
    Operation("get", "/api/payments/{transaction_id}/", payments_api.get_payment, "payments", 200, out.PaymentOut,
              (401, 404, 503), params=(TXN,),
              description="Its amount is the cart's total when it started; `booking_id` is set once it succeeded."),
    Operation("get", "/api/payments/{transaction_id}/history/", payments_api.payment_history, "payments", 200,
              Many(out.HistoryEntry), (401, 404, 503), params=(TXN,),
              description="Every recorded trigger. A capture that came too late is here with `accepted: false`: "
                          "the customer was charged, and that capture is refunded."),
    Operation("post", "/api/payments/{transaction_id}/confirm/", payments_api.confirm, "payments", 200,
              out.Confirmed, W, body.Confirmation, params=(TXN,),
              description="`signature` is `hex(HMAC-SHA256(GATEWAY_SECRET, provider_order_id + \"|\" + "
                          "provider_payment_id))`; a bad one is a 400 (`invalid_signature`) and changes nothing. In "
                          "one transaction the cart is CONVERTED, the payment SUCCESS, its open siblings superseded "
                          "and the booking CONFIRMED. Confirming again with the same `provider_payment_id` replays "
                          "the 200. A payment that is no longer PENDING was charged all the same: the capture is "
                          "refused and recorded in its history, and a refund of it is requested in the same "
                          "transaction, which the refund job then sends to the gateway (409 "
                          "`payment_not_pending`).",
              conflicts=Conflicts(("payment_not_pending", "state_conflict"))),
    Operation("post", "/api/payments/{transaction_id}/cancel/", payments_api.cancel, "payments", 200,
              out.PaymentOut, W, body.Empty, body_required=False, params=(TXN,),
              description="An open payment (INITIATED or PENDING) becomes CANCELLED, and the cart can be changed "
                          "again. A capture of it that still arrives is refused and refunded.",
              conflicts=Conflicts(("payment_not_open", "state_conflict"))),
    Operation("get", "/api/payments/{transaction_id}/refunds/", payments_api.payment_refunds, "refunds", 200,
              Many(out.RefundOut), (401, 404, 503), params=(TXN,),
              description="A refund is money the gateway captured that bought no booking, on its way back: one per "
                          "captured provider payment. The refund job sends each REQUESTED one to the gateway; it "
                          "ends SUCCEEDED, or FAILED when the gateway refuses it for good or the attempts run out. "
                          "`[]` when the payment has none."),
    Operation("get", "/api/admin/refunds/", refunds_api.list_refunds, "refunds", 200, Many(out.RefundOut),
              (400, 401, 403, 503), params=(REFUND_STATUS, PAGE_LIMIT, PAGE_BEFORE),
              description="Admins only (403 for anyone else). Newest first (by `created_at`, then `refund_id`), one "
                          "page at a time: for the next page send the same query with `before` set to the last "
                          "`refund_id` of this one; a page shorter than `limit` is the last. Paging neither skips "
                          "nor repeats a refund, whatever changes state meanwhile."),
    Operation("post", "/api/admin/refunds/{refund_id}/retry/", refunds_api.retry_refund, "refunds", 200,
              out.RefundOut, (400, 401, 403, 404, 413, 503), body.Empty, body_required=False, params=(REFUND_ID,),
              description="Admins only (403 for anyone else). A FAILED refund goes back to REQUESTED (trigger "
                          "`retry`, recorded with the admin as actor), due at once, with `attempts` 0. The refund "
                          "job's next run sends it, asking the gateway first whether it already refunded it, so it "
                          "is never refunded twice.",
              conflicts=Conflicts(("refund_not_failed", "state_conflict"))),
    # Its body and headers are the configured gateway's (`_webhook_of`); the offline gateway's here.
    Operation("post", "/api/payments/webhook/", webhooks_api.webhook, "payments", 200, out.WebhookAck,
              (400, 401, 413, 503), body.GatewayEvent, auth=False,
              description="No bearer token: the gateway signs the raw body (the signature header below; a bad one "
                          "is a 401). Each event is applied once (a repeat is `duplicate`), and `outcome` says what "
                          "it did: a capture converts the cart as a confirm would; one that comes after the payment "
                          "closed is refused and refunded; refund events settle the refund they name."),
    Operation("get", "/api/bookings/", bookings_api.list_bookings, "bookings", 200, Many(out.BookingOut),
              (401, 503), description="A booking is made by a confirmed payment, with the cart's slot and items."),
    Operation("get", "/api/bookings/{booking_id}/", bookings_api.get_booking, "bookings", 200, out.BookingOut,
              (401, 404, 503), params=(BOOKING_ID,),
              description="Its total is the amount of the payment that made it."),
    Operation("get", "/healthz", ops_api.healthz, "operations", 200, out.Health, (), auth=False,
              extra={503: (out.Unhealthy, "The database cannot be reached.", ())},
              description="For load balancers and orchestrators: 200 while the database answers, with the state of "
                          "this process's scheduler."),
    Operation("get", "/metrics", ops_api.prometheus_metrics, "operations", 200, TEXT, (), auth=False,
              description="Prometheus text format: request latencies, transitions, open and stale payments, sweep "
                          "runs, refunds. Every worker's samples are added up, whichever answers."),
    Operation("get", "/openapi.json", openapi, "operations", 200, "application/json", (), auth=False,
              description="OpenAPI 3.1, generated from the models the service validates and answers with."),
    Operation("get", "/docs", docs_page.api_reference, "operations", 200, HTML, (), auth=False,
              description="This page: /openapi.json rendered by Swagger UI, whose files the service serves itself "
                          "(no network needed). The one HTML page of the service."),
)

_ERRORS = {
    400: (out.ErrorBody, "Malformed JSON, or invalid fields (each named in `fields`).", ()),
    401: (out.ErrorBody, "Missing or bad credentials.", ("WWW-Authenticate",)),
    403: (out.ErrorBody, "Not allowed (admins only).", ()),
    404: (out.ErrorBody, "No such resource for this caller.", ()),
    413: (out.ErrorBody, "The body is over 64 KiB (chunked bodies included).", ()),
    415: (out.ErrorBody, "A body sent with a Content-Type other than JSON.", ()),
    429: (out.TooManyFailedLogins, "Too many failed logins for this email or address; `Retry-After` says when to "
                            "try again.", ("Retry-After",)),
    502: (out.GatewayErrorBody, "The payment gateway could not create the order.", ()),
    503: (out.ErrorBody, "The database cannot be reached; retry shortly.", ("Retry-After",)),
}

# What a 401 says on an endpoint that needs a token: its reason may be `token_expired`.
_BEARER_401 = (out.BearerRefused, "No bearer token, or one that is unknown or logged out; or one past its "
               "`expires_at` (`reason: token_expired`).", ("WWW-Authenticate",))

_HEADERS = {
    "X-Request-ID": {"description": "The caller's X-Request-ID if well formed (1-128 of A-Z a-z 0-9 - _), "
                                    "else a new one; it is in every log line of the request.",
                     "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}, "required": True},
    "WWW-Authenticate": {"schema": {"type": "string"}},
    "Retry-After": {"description": "Whole seconds to wait.", "schema": {"type": "string", "pattern": r"^\d+$"}},
}

INFO = """Customers put services in a cart, pick a slot, pay, and get a booking (SPEC §3).

1. `POST /api/auth/register` (or `/api/auth/token`) gives a bearer token: **Authorize** with it to try the other \
calls here.
2. `POST /api/cart/carts/` with a slot, then `POST /api/cart/carts/{cart_id}/items/`.
3. `POST /api/payments/` starts a payment (PENDING, with the gateway's `provider_order_id`); \
`POST /api/payments/{transaction_id}/confirm/` with the gateway's signature turns it into a booking.

Money is a decimal string with two places (`"5000.00"`), times are ISO 8601 UTC with milliseconds \
(`"2025-07-20T03:30:00.000Z"`). Every error is `{"error", "detail"}`, plus `reason` on each 409 and `fields` on a 400 \
that names what was wrong. Another user's cart, payment or booking is a 404, as if it did not exist."""


def _conflict_model(op: Operation) -> type[BaseModel]:
    """The 409 body of `op`: the error envelope with `reason` one of those it can give."""
    return _conflict_model_named(op.view.__name__, op.conflicts.reasons)


@cache
def _conflict_model_named(view_name: str, reasons: tuple[str, ...]) -> type[BaseModel]:
    name = "".join(part.capitalize() for part in view_name.split("_")) + "Conflict"
    return create_model(name, __base__=out.ConflictBody, __doc__=f"A 409 of `{view_name}`; `reason` says why.",
                        reason=(Literal[reasons], Field(description="Why the current state refuses the request.")))


def _models(shape: Shape) -> list[type[BaseModel]]:
    if shape is NO_BODY:
        return []
    if isinstance(shape, Many):
        return [shape.model]
    if isinstance(shape, OneOf):
        return list(shape.models)
    return [] if isinstance(shape, str) else [shape]


def _json(example):
    """An example as the service writes it: a response model's body, or plain JSON as it is."""
    if isinstance(example, list):
        return [_json(item) for item in example]
    if isinstance(example, out.Response):
        return example.body()
    return example


def _content(shape: Shape, refs: dict, example=None) -> dict:
    if shape in (TEXT, HTML):
        return {shape: {"schema": {"type": "string"}}}
    if isinstance(shape, str):
        return {shape: {"schema": {"type": "object"}}}
    if isinstance(shape, Many):
        schema = {"type": "array", "items": refs[(shape.model, "serialization")]}
        example = [example] if isinstance(example, out.Response) else example
    elif isinstance(shape, OneOf):
        schema = {"anyOf": [refs[(m, "serialization")] for m in shape.models]}
    else:
        schema = refs[(shape, "serialization")]
    return {"application/json": {"schema": schema, **({"example": _json(example)} if example is not None else {})}}


def _answer(shape: Shape, description: str, headers: tuple[str, ...], refs: dict, example=None) -> dict:
    return {"description": description,
            **({} if shape is NO_BODY else {"content": _content(shape, refs, example)}),
            "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-ID", *headers)}}


def _error(op: Operation, status: int) -> tuple:
    return _BEARER_401 if status == 401 and op.auth else _ERRORS[status]


def _success_example(op: Operation):
    model = _models(op.answer)[0] if _models(op.answer) else None
    return examples.OPERATION_ANSWERS.get((op.method, op.path), examples.ANSWERS.get(model))


def _conflict_answer(op: Operation, refs: dict) -> dict:
    """The 409 of `op`: each reason it can give, said in its description and shown in an example of its own."""
    conflicts, model = op.conflicts, _conflict_model(op)
    shape = OneOf((*conflicts.also, model)) if conflicts.also else model
    bodies = {body["reason"]: body for body in (examples.ANSWERS[m].body() for m in conflicts.also)}
    bodies |= {reason: examples.conflict(reason, op.view.__name__) for reason in conflicts.reasons}
    description = "\n\n".join(filter(None, [
        "The current state refuses the request; `reason` says why:",
        "\n".join(f"- `{reason}`: {REASONS[reason]}" for reason in bodies), conflicts.note]))
    answer = _answer(shape, description, conflicts.headers, refs)
    answer["content"]["application/json"]["examples"] = {
        reason: {"summary": REASONS[reason], "value": value} for reason, value in bodies.items()}
    return answer


def _operation(op: Operation, refs: dict, by_route: dict) -> dict:
    responses = {str(op.ok): _answer(op.answer, op.summary, (), refs, _success_example(op))}
    links = {by_route[target].operation_id: {"operationId": by_route[target].operation_id, "parameters": params}
             for target, params in LINKS.get((op.method, op.path), [])}
    if links:
        responses[str(op.ok)]["links"] = links
    # Whatever reads a body refuses one that is not JSON; the view need not say so.
    for status in (*op.errors, 415) if op.body is not None else op.errors:
        shape, description, headers = _error(op, status)
        responses[str(status)] = _answer(shape, description, headers, refs, examples.ERRORS.get(status))
    if op.conflicts is not None:
        responses["409"] = _conflict_answer(op, refs)
    for status, (shape, description, headers) in op.extra.items():
        example = examples.ANSWERS.get(_models(shape)[0]) if _models(shape) else None
        responses[str(status)] = _answer(shape, description, headers, refs, example)
    spec = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": op.description,
        "tags": [op.tag],
        "security": [{"bearer": []}] if op.auth else [],
        "responses": dict(sorted(responses.items())),
    }
    if op.params:
        spec["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required, "schema": p.schema,
             **({"description": p.description} if p.description else {})} for p in op.params]
    if op.body is not None:
        media = {"schema": refs[(op.body, "validation")]}
        if op.body in examples.REQUESTS:
            media["example"] = examples.REQUESTS[op.body]
        spec["requestBody"] = {"required": op.body_required, "content": {"application/json": media}}
    return spec


def _webhook_of(op: Operation, webhook: WebhookFormat) -> Operation:
    """The webhook's operation takes the body and headers of the gateway's format; any other is as it is."""
    if op.view is not webhooks_api.webhook:
        return op
    headers = tuple(Param(h.name, "header", {"type": "string", **({"pattern": h.pattern} if h.pattern else {})},
                          True, h.description) for h in webhook.headers)
    return replace(op, body=webhook.body, params=headers)


def build_document(gateway: str = "offline") -> dict:
    """The whole document for the named gateway; pure (no app needed), so tests and the endpoint build the same."""
    operations = tuple(_webhook_of(op, FORMATS[gateway]) for op in OPERATIONS)
    wanted = {(op.body, "validation") for op in operations if op.body is not None}
    for op in operations:
        wanted |= {(m, "serialization") for m in _models(op.answer)}
        wanted |= {(m, "serialization") for shape, _, _ in op.extra.values() for m in _models(shape)}
        if op.conflicts is not None:
            wanted |= {(m, "serialization") for m in (*op.conflicts.also, _conflict_model(op))}
    wanted |= {(m, "serialization") for shape, _, _ in (*_ERRORS.values(), _BEARER_401) for m in _models(shape)}
    refs, defs = models_json_schema(sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])),
                                    ref_template=REF)
    by_route = {(op.method, op.path): op for op in operations}
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs, by_route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cart, payment and booking service", "version": "1.0.0", "description": INFO},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}), "headers": _HEADERS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
