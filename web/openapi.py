"""The OpenAPI 3.1 document, built from the pydantic models the code validates and answers with.

Every operation of SPEC §3 is one `Operation` below: its view (whose
docstring is the summary), its request model (web/schemas.py), its answer
(web/responses.py) and every other status it can answer with. Nothing here is
hand-written JSON Schema: the schemas come from `models_json_schema`.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from flask import Blueprint, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from machines import CartStatus, RefundStatus
from machines.ids import UUID_PATTERN
from web import accounts_api, bookings_api, cart_deletion_api, carts_api, ops_api, payments_api, refunds_api
from web import services_api
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
NO_BODY = None  # an answer with no body at all (a 204)

Shape = type[BaseModel] | Many | OneOf | str | None


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

    @property
    def summary(self) -> str:
        """The first line of the view's docstring."""
        return inspect.getdoc(self.view).partition("\n")[0]

    @property
    def description(self) -> str:
        """The rest of the view's docstring, if any."""
        return inspect.getdoc(self.view).partition("\n")[2].strip()

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

W = (400, 401, 404, 409, 413, 503)  # a write on an owned resource

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/api/auth/register", accounts_api.register, "auth", 201, out.Registered,
              (400, 409, 413, 503), body.Registration, auth=False),
    Operation("post", "/api/auth/token", accounts_api.token, "auth", 200, out.Token, (400, 401, 413, 429, 503),
              body.Credentials, auth=False),
    Operation("post", "/api/auth/logout", accounts_api.logout, "auth", 204, NO_BODY, (400, 401, 413, 503),
              body.Empty, body_required=False),
    Operation("get", "/api/services/", services_api.list_services, "catalogue", 200, Many(out.ServiceOut), (503,),
              auth=False),
    Operation("post", "/api/services/", services_api.create_service, "catalogue", 201, out.ServiceOut,
              (400, 401, 403, 413, 503), body.NewService),
    Operation("post", "/api/cart/carts/", carts_api.create_cart, "carts", 201, out.CartOut, (400, 401, 413, 503),
              body.Slot, body_required=False),
    Operation("get", "/api/cart/carts/", carts_api.list_carts, "carts", 200, Many(out.CartOut), (400, 401, 503),
              params=(CART_STATUS,)),
    Operation("get", "/api/cart/carts/{cart_id}/", carts_api.get_cart, "carts", 200, out.CartOut, (401, 404, 503),
              params=(CART_ID,)),
    Operation("patch", "/api/cart/carts/{cart_id}/", carts_api.set_slot, "carts", 200, out.CartOut, W, body.Slot,
              params=(CART_ID,)),
    Operation("delete", "/api/cart/carts/{cart_id}/", cart_deletion_api.delete_cart, "cart deletion", 200,
              out.CartDeleted, (400, 401, 404, 413, 503), body.Empty, body_required=False, params=(CART_ID,),
              extra={409: (OneOf((out.DeletionBlocked, out.ConflictBody)),
                           "Fresh open payments remain (with Retry-After), or the cart is CONVERTED "
                           "(`cart_converted`, with its `booking_id`) or not ACTIVE.", ("Retry-After",))}),
    Operation("get", "/api/cart/carts/{cart_id}/deletion_status/", cart_deletion_api.deletion_status,
              "cart deletion", 200, out.DeletionStatus, (401, 404, 503), params=(CART_ID,)),
    Operation("post", "/api/cart/carts/{cart_id}/cleanup_old_payments/", cart_deletion_api.cleanup_old_payments,
              "cart deletion", 200, out.CleanupResult, W, body.Empty, body_required=False, params=(CART_ID,)),
    Operation("post", "/api/cart/carts/{cart_id}/items/", carts_api.add_item, "carts", 201, out.CartOut, W,
              body.NewItem, params=(CART_ID,)),
    Operation("delete", "/api/cart/carts/{cart_id}/items/{item_id}/", carts_api.remove_item, "carts", 200,
              out.CartOut, W, body.Empty, body_required=False, params=(CART_ID, ITEM_ID)),
    Operation("get", "/api/cart/carts/{cart_id}/history/", carts_api.cart_history, "carts", 200,
              Many(out.HistoryEntry), (401, 404, 503), params=(CART_ID,)),
    Operation("post", "/api/payments/", payments_api.create_payment, "payments", 201, out.PaymentOut,
              (400, 401, 404, 413, 415, 502, 503), body.NewPayment, params=(IDEMPOTENCY_KEY,),
              extra={409: (out.ConflictBody, "The cart cannot be paid for (`cart_not_active`, `cart_empty`, "
                           "`booking_slot_missing`, `amount_too_large`); the payment was closed while the gateway "
                           "created its order (`cart_not_active` when a capture of a sibling superseded it, "
                           "`payment_not_open` when it was cancelled or timed out); the Idempotency-Key was used "
                           "with another body (`idempotency_key_reused`); or the first request with it is still "
                           "running (`idempotency_key_in_progress`, with Retry-After: 1). A 409 given after the "
                           "payment was recorded is replayed like any other answer.", ("Retry-After",))}),
    Operation("get", "/api/payments/{transaction_id}/", payments_api.get_payment, "payments", 200, out.PaymentOut,
              (401, 404, 503), params=(TXN,)),
    Operation("get", "/api/payments/{transaction_id}/history/", payments_api.payment_history, "payments", 200,
              Many(out.HistoryEntry), (401, 404, 503), params=(TXN,)),
    Operation("post", "/api/payments/{transaction_id}/confirm/", payments_api.confirm, "payments", 200,
              out.Confirmed, W, body.Confirmation, params=(TXN,)),
    Operation("post", "/api/payments/{transaction_id}/cancel/", payments_api.cancel, "payments", 200,
              out.PaymentOut, W, body.Empty, body_required=False, params=(TXN,)),
    Operation("get", "/api/payments/{transaction_id}/refunds/", payments_api.payment_refunds, "refunds", 200,
              Many(out.RefundOut), (401, 404, 503), params=(TXN,)),
    Operation("get", "/api/admin/refunds/", refunds_api.list_refunds, "refunds", 200, Many(out.RefundOut),
              (400, 401, 403, 503), params=(REFUND_STATUS, PAGE_LIMIT, PAGE_BEFORE)),
    Operation("post", "/api/admin/refunds/{refund_id}/retry/", refunds_api.retry_refund, "refunds", 200,
              out.RefundOut, (400, 401, 403, 404, 413, 503), body.Empty, body_required=False, params=(REFUND_ID,),
              extra={409: (out.ConflictBody, "The refund is not FAILED (`refund_not_failed`, with its `status`); "
                           "nothing changes.", ())}),
    # Its body and headers are the configured gateway's (`_webhook_of`); the offline gateway's here.
    Operation("post", "/api/payments/webhook/", webhooks_api.webhook, "payments", 200, out.WebhookAck,
              (400, 401, 413, 503), body.GatewayEvent, auth=False),
    Operation("get", "/api/bookings/", bookings_api.list_bookings, "bookings", 200, Many(out.BookingOut),
              (401, 503)),
    Operation("get", "/api/bookings/{booking_id}/", bookings_api.get_booking, "bookings", 200, out.BookingOut,
              (401, 404, 503), params=(BOOKING_ID,)),
    Operation("get", "/healthz", ops_api.healthz, "operations", 200, out.Health, (), auth=False,
              extra={503: (out.Unhealthy, "The database cannot be reached.", ())}),
    Operation("get", "/metrics", ops_api.prometheus_metrics, "operations", 200, TEXT, (), auth=False),
    Operation("get", "/openapi.json", openapi, "operations", 200, "application/json", (), auth=False),
)

_ERRORS = {
    400: (out.ErrorBody, "Malformed JSON, or invalid fields (each named in `fields`).", ()),
    401: (out.ErrorBody, "Missing or bad credentials.", ("WWW-Authenticate",)),
    403: (out.ErrorBody, "Not allowed (admins only).", ()),
    404: (out.ErrorBody, "No such resource for this caller.", ()),
    409: (out.ConflictBody, "The current state refuses the request; `reason` says why.", ()),
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


def _models(shape: Shape) -> list[type[BaseModel]]:
    if shape is NO_BODY:
        return []
    if isinstance(shape, Many):
        return [shape.model]
    if isinstance(shape, OneOf):
        return list(shape.models)
    return [] if isinstance(shape, str) else [shape]


def _content(shape: Shape, refs: dict) -> dict:
    if shape == TEXT:
        return {TEXT: {"schema": {"type": "string"}}}
    if isinstance(shape, str):
        return {shape: {"schema": {"type": "object"}}}
    if isinstance(shape, Many):
        schema = {"type": "array", "items": refs[(shape.model, "serialization")]}
    elif isinstance(shape, OneOf):
        schema = {"anyOf": [refs[(m, "serialization")] for m in shape.models]}
    else:
        schema = refs[(shape, "serialization")]
    return {"application/json": {"schema": schema}}


def _answer(shape: Shape, description: str, headers: tuple[str, ...], refs: dict) -> dict:
    return {"description": description, **({} if shape is NO_BODY else {"content": _content(shape, refs)}),
            "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-ID", *headers)}}


def _error(op: Operation, status: int) -> tuple:
    return _BEARER_401 if status == 401 and op.auth else _ERRORS[status]


def _operation(op: Operation, refs: dict, by_route: dict) -> dict:
    responses = {str(op.ok): _answer(op.answer, op.summary, (), refs)}
    links = {by_route[target].operation_id: {"operationId": by_route[target].operation_id, "parameters": params}
             for target, params in LINKS.get((op.method, op.path), [])}
    if links:
        responses[str(op.ok)]["links"] = links
    # Whatever reads a body refuses one that is not JSON; the view need not say so.
    for status in (*op.errors, 415) if op.body is not None else op.errors:
        shape, description, headers = _error(op, status)
        responses[str(status)] = _answer(shape, description, headers, refs)
    for status, (shape, description, headers) in op.extra.items():
        responses[str(status)] = _answer(shape, description, headers, refs)
    spec = {
        "operationId": op.operation_id,
        "summary": op.summary,
        **({"description": op.description} if op.description else {}),
        "tags": [op.tag],
        "security": [{"bearer": []}] if op.auth else [],
        "responses": dict(sorted(responses.items())),
    }
    if op.params:
        spec["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required, "schema": p.schema,
             **({"description": p.description} if p.description else {})} for p in op.params]
    if op.body is not None:
        spec["requestBody"] = {"required": op.body_required,
                               "content": {"application/json": {"schema": refs[(op.body, "validation")]}}}
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
    wanted |= {(m, "serialization") for shape, _, _ in (*_ERRORS.values(), _BEARER_401) for m in _models(shape)}
    refs, defs = models_json_schema(sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])),
                                    ref_template=REF)
    by_route = {(op.method, op.path): op for op in operations}
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs, by_route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cart, payment and booking service", "version": "1.0.0",
                 "description": "Carts, payments and bookings (SPEC §3). Errors are "
                                "`{\"error\", \"detail\", \"reason\"?, \"fields\"?}`."},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}), "headers": _HEADERS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }

