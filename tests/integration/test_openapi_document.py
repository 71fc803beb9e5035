"""/openapi.json (SPEC §3 Operations): built from the models, covering every route, true to real answers."""

import json
import re

import jsonschema_rs
import pytest
from pydantic import TypeAdapter

from tests.builders import (auth, confirm, make_admin, make_cart, make_payment, register, send_webhook,
                            start_payment)
from tests.conftest import both_gateways
from web import responses as out
from web.openapi import OPERATIONS, Many, OneOf, build_document

DELETION_ENDPOINTS = {("delete", "/api/cart/carts/{cart_id}/"), ("get", "/api/cart/carts/{cart_id}/deletion_status/"),
                      ("post", "/api/cart/carts/{cart_id}/cleanup_old_payments/")}


def app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        # The webhook path's other methods exist only to answer 405 (see webhooks_api), and /docs's script and
        # stylesheet are files like Flask's static ones: not operations.
        if rule.endpoint in ("static", "webhooks.webhook_other_methods", "docs.asset"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_route_of_the_app_is_documented_and_every_documented_operation_exists(app):
    documented = {(op.method, op.path) for op in OPERATIONS}
    routes = app_routes(app)
    assert routes - documented == set()
    assert documented - routes == set()
    assert DELETION_ENDPOINTS <= routes  # served, not merely documented from the SPEC


def test_the_served_document_is_openapi_3_built_from_the_request_and_response_models(client):
    document = client.get("/openapi.json").json
    assert document == json.loads(json.dumps(build_document()))
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    assert schemas["Registration"]["properties"]["password"]["minLength"] == 8
    assert schemas["NewItem"]["properties"]["quantity"] == {"maximum": 99, "minimum": 1, "title": "Quantity",
                                                           "type": "integer"}
    assert schemas["CartOut"]["additionalProperties"] is False
    register_op = document["paths"]["/api/auth/register"]["post"]
    assert register_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Registration"}
    assert register_op["security"] == []
    assert document["paths"]["/api/cart/carts/"]["get"]["security"] == [{"bearer": []}]


WEBHOOK_FORMATS = {"offline": ("GatewayEvent", ["X-Gateway-Signature"]),
                   "razorpay": ("RazorpayEvent", ["X-Razorpay-Signature", "X-Razorpay-Event-Id"])}


@both_gateways
def test_the_webhook_is_documented_with_the_body_and_headers_of_the_configured_gateway(client, gateway_name):
    document = client.get("/openapi.json").json
    operation = document["paths"]["/api/payments/webhook/"]["post"]
    model, headers = WEBHOOK_FORMATS[gateway_name]

    assert document == json.loads(json.dumps(build_document(gateway_name)))
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{model}"}
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        (name, "header", True) for name in headers]
    others = {other for other, _ in WEBHOOK_FORMATS.values()} - {model}
    assert others.isdisjoint(document["components"]["schemas"])
    assert set(operation["responses"]) == {"200", "400", "401", "413", "415", "503"}


def test_every_error_answer_is_documented_with_the_error_envelope(client):
    document = client.get("/openapi.json").json
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                assert "X-Request-ID" in answer["headers"], (method, path, status)
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    refs = [s["$ref"] for s in schema.get("anyOf", [schema])]
                    for ref in refs:
                        props = document["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
                        assert {"error", "detail"} <= set(props), (method, path, status, ref)


def test_each_endpoint_documents_the_statuses_it_can_answer_with(client):
    paths = client.get("/openapi.json").json["paths"]

    def statuses(method, path):
        return set(paths[path][method]["responses"])

    assert statuses("post", "/api/payments/") == {"201", "400", "401", "404", "409", "413", "415", "502", "503"}
    assert statuses("post", "/api/services/") == {"201", "400", "401", "403", "413", "415", "503"}
    assert statuses("post", "/api/payments/webhook/") == {"200", "400", "401", "413", "415", "503"}
    assert statuses("get", "/healthz") == {"200", "503"}
    assert statuses("delete", "/api/cart/carts/{cart_id}/") >= {"200", "401", "404", "409", "503"}


def test_starting_a_payment_documents_the_retry_after_of_a_key_in_progress(client):
    conflict = client.get("/openapi.json").json["paths"]["/api/payments/"]["post"]["responses"]["409"]

    assert "idempotency_key_in_progress" in conflict["description"]
    assert "Retry-After" in conflict["headers"]


class DocumentedAnswers:
    """Checks real answers against the served document (as a fuzzer would) and against the models."""

    def __init__(self, client):
        self.document = client.get("/openapi.json").json
        self.checked: set[tuple[str, str, str]] = set()

    def check(self, method: str, path: str, response):
        operation = self.document["paths"][path][method]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {path} answered undocumented {status}"
        answer = operation["responses"][status]
        [(media, content)] = answer["content"].items()
        assert response.content_type.split(";")[0] == media
        if media == "application/json":
            schema = {**content["schema"], "components": self.document["components"]}
            jsonschema_rs.validator_for(schema).validate(response.json)
        self.checked.add((method, path, status))
        return response

    def check_model(self, method: str, path: str, response):
        """Also parse a success answer with its pydantic model, strictly."""
        self.check(method, path, response)
        [op] = [o for o in OPERATIONS if (o.method, o.path) == (method, path)]
        shape = op.answer
        adapter = TypeAdapter(list[shape.model]) if isinstance(shape, Many) else TypeAdapter(shape)
        assert not isinstance(shape, OneOf)
        adapter.validate_json(response.get_data())
        return response


def test_real_answers_match_the_documented_schemas_and_the_response_models(app, client):
    doc = DocumentedAnswers(client)
    customer = register(client)
    h = customer["headers"]
    doc.check_model("post", "/api/auth/register", client.post("/api/auth/register", json={
        "email": "documented@example.com", "password": "long-enough"}))
    doc.check("post", "/api/auth/register", client.post("/api/auth/register", json={
        "email": "documented@example.com", "password": "long-enough"}))  # 409 email_taken
    doc.check("post", "/api/auth/register", client.post("/api/auth/register", json={"email": 1}))
    doc.check("post", "/api/auth/register", client.post("/api/auth/register", data="{nope",
                                                        content_type="application/json"))
    doc.check_model("post", "/api/auth/token", client.post("/api/auth/token", json={
        "email": "documented@example.com", "password": "long-enough"}))
    doc.check("post", "/api/auth/token", client.post("/api/auth/token", json={
        "email": "documented@example.com", "password": "wrong-password"}))
    admin = make_admin(app, client)
    doc.check_model("post", "/api/services/", client.post("/api/services/", headers=admin["headers"], json={
        "name": "Documented massage", "price": "1500.00", "duration_minutes": 45}))
    doc.check("post", "/api/services/", client.post("/api/services/", headers=h, json={
        "name": "x", "price": "1.00", "duration_minutes": 1}))  # 403
    doc.check("post", "/api/services/", client.post("/api/services/", headers=admin["headers"],
                                                    data=b"{" + b" " * 70000 + b"}",
                                                    content_type="application/json"))  # 413
    doc.check_model("get", "/api/services/", client.get("/api/services/"))

    cart = make_cart(app, client, customer, items=1)
    cart_id = cart["cart_id"]
    doc.check_model("post", "/api/cart/carts/", client.post("/api/cart/carts/", headers=h, json={}))
    doc.check_model("get", "/api/cart/carts/", client.get("/api/cart/carts/", headers=h))
    doc.check("get", "/api/cart/carts/", client.get("/api/cart/carts/?status=NOPE", headers=h))
    doc.check("get", "/api/cart/carts/", client.get("/api/cart/carts/"))  # 401
    doc.check_model("get", "/api/cart/carts/{cart_id}/", client.get(f"/api/cart/carts/{cart_id}/", headers=h))
    doc.check("get", "/api/cart/carts/{cart_id}/", client.get("/api/cart/carts/nope/", headers=h))
    doc.check_model("patch", "/api/cart/carts/{cart_id}/", client.patch(
        f"/api/cart/carts/{cart_id}/", headers=h, json={"selected_time": "11:00"}))
    service = client.get("/api/services/").json[0]
    doc.check_model("post", "/api/cart/carts/{cart_id}/items/", client.post(
        f"/api/cart/carts/{cart_id}/items/", headers=h, json={"service_id": service["service_id"], "quantity": 2}))
    item_id = client.get(f"/api/cart/carts/{cart_id}/", headers=h).json["items"][-1]["item_id"]
    doc.check_model("delete", "/api/cart/carts/{cart_id}/items/{item_id}/", client.delete(
        f"/api/cart/carts/{cart_id}/items/{item_id}/", headers=h))

    first = start_payment(client, customer, cart_id, key="documented-1")
    doc.check_model("post", "/api/payments/", first)
    doc.check("post", "/api/payments/", client.post("/api/payments/", headers={**h, "Idempotency-Key": "documented-1"},
                                                    json={"cart_id": str(cart_id).upper()}))  # 400 or 409
    doc.check("post", "/api/cart/carts/{cart_id}/items/", client.post(
        f"/api/cart/carts/{cart_id}/items/", headers=h,
        json={"service_id": service["service_id"], "quantity": 1}))  # 409 cart_locked_by_payment
    payment = first.json
    txn = payment["transaction_id"]
    doc.check_model("get", "/api/payments/{transaction_id}/", client.get(f"/api/payments/{txn}/", headers=h))
    doc.check("post", "/api/payments/{transaction_id}/confirm/", confirm(app, client, customer, payment,
                                                                          sig="0" * 64))  # 400 invalid_signature
    second = make_payment(app, client, customer, make_cart(app, client, customer)["cart_id"])
    doc.check_model("post", "/api/payments/{transaction_id}/cancel/", client.post(
        f"/api/payments/{second['transaction_id']}/cancel/", headers=h))
    doc.check("post", "/api/payments/{transaction_id}/cancel/", client.post(
        f"/api/payments/{second['transaction_id']}/cancel/", headers=h))  # 409 payment_not_open
    doc.check_model("post", "/api/payments/{transaction_id}/confirm/", confirm(app, client, customer, payment))
    doc.check_model("get", "/api/payments/{transaction_id}/history/", client.get(
        f"/api/payments/{txn}/history/", headers=h))
    doc.check_model("get", "/api/cart/carts/{cart_id}/history/", client.get(
        f"/api/cart/carts/{cart_id}/history/", headers=h))
    doc.check("post", "/api/cart/carts/{cart_id}/items/", client.post(
        f"/api/cart/carts/{cart_id}/items/", headers=h,
        json={"service_id": service["service_id"], "quantity": 1}))  # 409 cart_not_active
    doc.check("post", "/api/payments/", start_payment(client, customer, cart_id))  # 409 cart_not_active
    event = {"event_id": "evt_doc_1", "event": "payment.failed", "provider_order_id": payment["provider_order_id"],
             "provider_payment_id": "pay_doc"}
    doc.check_model("post", "/api/payments/webhook/", send_webhook(app, client, event))
    doc.check("post", "/api/payments/webhook/", send_webhook(app, client, event, sig="0" * 64))  # 401
    doc.check("post", "/api/payments/webhook/", send_webhook(app, client, {"event_id": "x"}))  # 400
    doc.check_model("get", "/api/bookings/", client.get("/api/bookings/", headers=h))
    booking_id = client.get("/api/bookings/", headers=h).json[0]["booking_id"]
    doc.check_model("get", "/api/bookings/{booking_id}/", client.get(f"/api/bookings/{booking_id}/", headers=h))
    doc.check("get", "/api/bookings/{booking_id}/", client.get(f"/api/bookings/{booking_id}/",
                                                              headers=auth("not-a-token")))  # 401
    doc.check_model("get", "/healthz", client.get("/healthz"))
    doc.check("get", "/metrics", client.get("/metrics"))
    doc.check("get", "/openapi.json", client.get("/openapi.json"))

    other = make_cart(app, client, customer)["cart_id"]
    doc.check_model("get", "/api/cart/carts/{cart_id}/deletion_status/", client.get(
        f"/api/cart/carts/{other}/deletion_status/", headers=h))
    doc.check_model("post", "/api/cart/carts/{cart_id}/cleanup_old_payments/", client.post(
        f"/api/cart/carts/{other}/cleanup_old_payments/", headers=h))
    make_payment(app, client, customer, other)
    doc.check("delete", "/api/cart/carts/{cart_id}/", client.delete(f"/api/cart/carts/{other}/", headers=h))
    doc.check("delete", "/api/cart/carts/{cart_id}/", client.delete(f"/api/cart/carts/{cart_id}/", headers=h))
    doc.check_model("delete", "/api/cart/carts/{cart_id}/", client.delete(
        f"/api/cart/carts/{make_cart(app, client, customer)['cart_id']}/", headers=h))

    statuses = {status for _, _, status in doc.checked}
    assert statuses >= {"200", "201", "400", "401", "403", "404", "409", "413"}


def test_the_healthz_503_matches_its_documented_schema(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=2")
    client = app.test_client()
    DocumentedAnswers(client).check("get", "/healthz", client.get("/healthz"))


@pytest.mark.parametrize("model", [out.CartOut, out.PaymentOut, out.BookingOut, out.ServiceOut, out.HistoryEntry])
def test_response_models_refuse_fields_they_do_not_define_and_send_every_field_they_do(model):
    schema = model.model_json_schema(mode="serialization")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])


def test_an_answer_that_does_not_fit_its_model_is_a_server_error_not_a_bad_request(app, client, monkeypatch):
    monkeypatch.setattr("web.ops_api.scheduler_state", lambda scheduler: None)  # not the str Health documents

    response = client.get("/healthz")

    assert response.status_code == 500
    assert "fields" not in response.json


# ---- the reference a reader gets at /docs ------------------------------------------------------------------------

def documented_operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def reasons_of(document: dict, schema: dict) -> set[str]:
    """The `reason`s a 409 schema allows: $refs followed, each alternative of an anyOf."""
    if "$ref" in schema:
        return reasons_of(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:
        return set().union(*(reasons_of(document, alternative) for alternative in schema["anyOf"]))
    reason = schema["properties"]["reason"]
    return set(reason.get("enum", [reason.get("const")]))


def validator(document: dict, schema: dict):
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


def test_every_operation_has_a_one_line_summary_and_a_description_that_says_more(client):
    for method, path, operation in documented_operations(client.get("/openapi.json").json):
        summary, description = operation["summary"], operation["description"]
        assert summary and "\n" not in summary, (method, path)
        assert len(description) > 30 and description != summary, (method, path)


def test_every_409_names_each_reason_it_can_give_and_shows_one_example_of_each(client):
    document = client.get("/openapi.json").json
    conflicts = 0
    for method, path, operation in documented_operations(document):
        if "409" not in operation["responses"]:
            continue
        conflicts += 1
        answer = operation["responses"]["409"]
        media = answer["content"]["application/json"]
        reasons = reasons_of(document, media["schema"])
        assert reasons, (method, path)
        assert set(media["examples"]) == reasons, (method, path)
        for reason, example in media["examples"].items():
            assert f"- `{reason}`: " in answer["description"], (method, path, reason)
            assert example["value"]["reason"] == reason
            validator(document, media["schema"]).validate(example["value"])
    assert conflicts == len([op for op in OPERATIONS if op.conflicts is not None]) == 10


def test_a_409_of_a_reason_its_operation_does_not_give_breaks_the_schema(client):
    document = client.get("/openapi.json").json
    schema = document["paths"]["/api/payments/{transaction_id}/cancel/"]["post"]["responses"]["409"]
    check = validator(document, schema["content"]["application/json"]["schema"])

    assert check.is_valid({"error": "Conflict", "detail": "Closed.", "reason": "payment_not_open"})
    assert not check.is_valid({"error": "Conflict", "detail": "Taken.", "reason": "email_taken"})


def test_every_example_fits_its_schema_and_every_json_answer_and_body_has_one(client):
    document = client.get("/openapi.json").json
    for method, path, operation in documented_operations(document):
        media_types = [("request", operation["requestBody"]["content"])] if "requestBody" in operation else []
        media_types += [(status, answer.get("content", {})) for status, answer in operation["responses"].items()]
        for status, content in media_types:
            if "application/json" not in content or path == "/openapi.json":
                continue
            media = content["application/json"]
            values = [media["example"]] if "example" in media else [e["value"] for e in media["examples"].values()]
            assert values, (method, path, status)
            for value in values:
                validator(document, media["schema"]).validate(value)


def test_the_request_examples_pass_the_services_own_validation():
    for op in OPERATIONS:
        if op.body is not None:
            example = build_document()["paths"][op.path][op.method]["requestBody"]["content"]["application/json"]
            op.body.model_validate(example["example"])
