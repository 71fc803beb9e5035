"""The suite's test client holds every answer to the served document (tests/documented_client.py)."""

import jsonschema_rs
import pytest

from tests.builders import make_service


def test_an_answer_that_breaks_its_documented_schema_fails_the_test_that_got_it(app, client, monkeypatch):
    make_service(app, client)
    monkeypatch.setattr("web.services_api.service_json", lambda service: {"service_id": service.id,
                                                                           "price": float(service.price)})

    with pytest.raises(jsonschema_rs.ValidationError):
        client.get("/api/services/")


def test_an_undocumented_status_fails_the_test_that_got_it(app, client):
    [endpoint] = [rule.endpoint for rule in app.url_map.iter_rules()
                  if rule.rule == "/api/services/" and "GET" in rule.methods]
    app.view_functions[endpoint] = lambda: ({"teapot": True}, 418)  # GET /api/services/ documents 200 only

    with pytest.raises(AssertionError, match="GET /api/services/ answered undocumented 418"):
        client.get("/api/services/")


def test_an_answer_in_another_format_than_documented_fails_the_test_that_got_it(app, client):
    [endpoint] = [rule.endpoint for rule in app.url_map.iter_rules()
                  if rule.rule == "/api/services/" and "GET" in rule.methods]
    app.view_functions[endpoint] = lambda: ("<html>ok</html>", 200, {"Content-Type": "text/html"})

    with pytest.raises(AssertionError, match="answered 200 as text/html"):
        client.get("/api/services/")
