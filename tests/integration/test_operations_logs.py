"""Logs (SPEC §5): one JSON object per line on stdout, a `request` event per request, no secrets."""

import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs as _capture_logs

from tests.builders import confirm, make_cart, make_payment, register, send_webhook
from web import logs, request_log


def capture_logs():
    """structlog's capture, with the bound context (request_id) merged in as in production."""
    return _capture_logs(processors=[structlog.contextvars.merge_contextvars])


def json_lines(text: str) -> list[dict]:
    """Every line of `text` parsed as JSON; fails on a line that is not one JSON object."""
    parsed = []
    for line in text.splitlines():
        if line.strip():
            event = json.loads(line)
            assert isinstance(event, dict), line
            parsed.append(event)
    return parsed


def requests_logged(captured: list[dict]) -> list[dict]:
    return [e for e in captured if e["event"] == "request"]


def test_every_request_is_logged_once_with_its_id_method_path_status_and_duration(client):
    with capture_logs() as captured:
        response = client.get("/api/services/")

    [event] = requests_logged(captured)
    assert event["method"] == "GET"
    assert event["path"] == "/api/services/"
    assert event["status"] == 200
    assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0
    assert event["request_id"] == response.headers["X-Request-ID"]
    assert "user_id" not in event


def test_the_request_event_names_the_user_once_the_token_is_known(client):
    customer = register(client)
    with capture_logs() as captured:
        client.get("/api/cart/carts/", headers=customer["headers"])
    [event] = requests_logged(captured)
    assert event["user_id"] == customer["user_id"]


def test_a_well_formed_caller_request_id_is_kept(client):
    caller_id = "checkout-7_" + "a" * 117  # 128 characters
    with capture_logs() as captured:
        response = client.get("/api/services/", headers={"X-Request-ID": caller_id})
    assert response.headers["X-Request-ID"] == caller_id
    assert requests_logged(captured)[0]["request_id"] == caller_id


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "semi;colon", "new\\nline", "ünïcode", ""])
def test_a_malformed_caller_request_id_is_replaced_by_a_new_one(client, bad):
    response = client.get("/api/services/", headers={"X-Request-ID": bad})
    given = response.headers["X-Request-ID"]
    assert given != bad
    assert 1 <= len(given) <= 128 and given.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize("bad", ["abc\n", "abc\r\n", "\nabc"])
def test_a_caller_request_id_with_a_line_break_is_replaced_by_a_new_one(bad):
    # Werkzeug's test client refuses line breaks in a header, so the check itself is asked.
    given = request_log.request_id_from(bad)

    assert given != bad and given.strip() == given and len(given) == 32


def test_each_request_gets_its_own_id_and_nothing_bound_in_one_leaks_into_the_next(client):
    with capture_logs() as captured:
        first = client.get("/api/services/")
        structlog.contextvars.bind_contextvars(leftover="from an earlier request")
        second = client.get("/api/services/")
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    assert all("leftover" not in e for e in requests_logged(captured))


def test_transitions_are_logged_after_commit_with_ids_states_trigger_and_actor(app, client):
    customer = register(client)
    payment = make_payment(app, client, customer)
    with capture_logs() as captured:
        assert confirm(app, client, customer, payment).status_code == 200

    moves = {(e["event"], e["trigger"]): e for e in captured if e["event"].endswith(".transition")}
    succeed = moves[("payment.transition", "succeed")]
    assert succeed["transaction_id"] == payment["transaction_id"]
    assert (succeed["from"], succeed["to"], succeed["actor"]) == ("PENDING", "SUCCESS", f"user:{customer['user_id']}")
    convert = moves[("cart.transition", "convert")]
    assert (convert["cart_id"], convert["from"], convert["to"]) == (payment["cart_id"], "ACTIVE", "CONVERTED")
    [converted] = [e for e in captured if e["event"] == "cart.converted"]
    assert converted["cart_id"] == payment["cart_id"]
    # The events of a request carry its id.
    request_id = requests_logged(captured)[0]["request_id"]
    assert succeed["request_id"] == convert["request_id"] == request_id


def test_stdout_gets_one_json_object_per_line_from_our_code_and_from_library_loggers(app, client, capsys):
    capsys.readouterr()
    client.get("/api/services/")
    logging.getLogger("werkzeug").info("a library says %s", "hello")
    logging.getLogger("apscheduler.scheduler").warning("a job was missed")
    logging.getLogger("transitions").warning("a trigger %s was not bound", "cancel")

    events = json_lines(capsys.readouterr().out)

    assert [e["event"] for e in events] == ["request", "a library says hello", "a job was missed",
                                            "a trigger cancel was not bound"]
    assert {"timestamp", "level"} <= set(events[0])
    assert events[1]["logger"] == "werkzeug" and events[1]["level"] == "info"
    assert events[2]["logger"] == "apscheduler.scheduler" and events[2]["level"] == "warning"
    assert events[3]["logger"] == "transitions" and events[3]["level"] == "warning"


def test_an_unhandled_error_is_one_json_line_with_a_structured_traceback_and_no_frame_locals(app, capsys):
    def explode():
        password = "hunter2-local-secret"  # noqa: F841  a local that must not be logged
        raise RuntimeError("boom")

    app.add_url_rule("/explode", "explode", explode)
    capsys.readouterr()
    response = app.test_client().get("/explode")

    assert response.status_code == 500 and response.json["error"] == "Internal Server Error"
    out = capsys.readouterr().out
    assert "hunter2-local-secret" not in out
    [error] = [e for e in json_lines(out) if e["event"] == "request.unhandled_error"]
    [exception] = error["exception"]
    assert exception["exc_type"] == "RuntimeError" and exception["exc_value"] == "boom"
    assert exception["frames"][-1]["name"] == "explode"
    assert error["request_id"]


def test_log_format_console_prints_lines_for_a_human(make_app, capsys):
    app = make_app(LOG_FORMAT="console")
    try:
        capsys.readouterr()
        app.test_client().get("/api/services/")
        out = capsys.readouterr().out
        assert "request" in out and "/api/services/" in out
        with pytest.raises(json.JSONDecodeError):
            json.loads(out.splitlines()[0])
    finally:
        logs.configure("json")


def test_keys_that_name_secrets_are_redacted():
    event = logs.redact_secrets(None, "info", {"event": "x", "password": "p", "api_token": "t",
                                               "X-Gateway-Signature": "s", "authorization": "Bearer t",
                                               "transaction_id": "TXN1"})
    assert event == {"event": "x", "password": "[redacted]", "api_token": "[redacted]",
                     "X-Gateway-Signature": "[redacted]", "authorization": "[redacted]", "transaction_id": "TXN1"}


def test_no_password_token_signature_or_secret_reaches_any_log_line(app, client, capsys):
    capsys.readouterr()
    password = "pa55word-never-logged"
    customer = register(client, password=password)
    login = client.post("/api/auth/token", json={"email": customer["email"], "password": password}).json["token"]
    client.post("/api/auth/token", json={"email": customer["email"], "password": "wrong-password-never-logged"})
    cart = make_cart(app, client, customer)
    payment = make_payment(app, client, customer, cart["cart_id"])
    forged = "f" * 64
    assert confirm(app, client, customer, payment, sig=forged).status_code == 400
    signed = app.extensions["gateway"].sign_payment(payment["provider_order_id"], "pay_log_1")
    assert confirm(app, client, customer, payment, "pay_log_1").status_code == 200
    event = {"event_id": "evt_log_1", "event": "payment.captured", "provider_order_id": payment["provider_order_id"],
             "provider_payment_id": "pay_log_2"}
    raw = json.dumps(event).encode()
    webhook_signature = app.extensions["gateway"].sign_webhook(raw)
    assert send_webhook(app, client, event).status_code == 200
    assert send_webhook(app, client, {**event, "event_id": "evt_log_2"}, sig="0" * 64).status_code == 401

    out = capsys.readouterr().out
    events = json_lines(out)
    assert len(requests_logged(events)) >= 10
    # the webhook's capture came too late: someone must refund it, so it is a warning
    assert [e["level"] for e in events if e["event"] == "payment.late_capture"] == ["warning"]
    secrets = {
        "password": password, "wrong password": "wrong-password-never-logged",
        "registration token": customer["token"], "login token": login, "payment signature": signed,
        "forged signature": forged, "webhook signature": webhook_signature,
        "gateway secret": app.config["GATEWAY_SECRET"], "webhook secret": app.config["GATEWAY_WEBHOOK_SECRET"],
    }
    leaked = {name for name, value in secrets.items() if value in out}
    assert not leaked, f"found in the logs: {leaked}"
    assert "Bearer" not in out and "Authorization" not in out
