"""The service catalogue: public list, admin-only creation (SPEC §3)."""

import pytest

from persistence.models import Service
from tests.builders import make_admin, make_service, register
from tests.integration.support import assert_json_error, count, snapshot


def test_the_service_list_needs_no_token_and_shows_prices_as_two_decimal_strings(app, client):
    created = make_service(app, client, name="Deep clean", price="2500", duration_minutes=90)

    response = client.get("/api/services/")

    assert response.status_code == 200
    assert response.json == [{"service_id": created["service_id"], "name": "Deep clean", "price": "2500.00",
                               "duration_minutes": 90}]


def test_the_service_list_is_empty_before_any_service_exists(client):
    response = client.get("/api/services/")

    assert response.status_code == 200
    assert response.json == []


def test_an_admin_creates_a_service(app, client):
    admin = make_admin(app, client)

    response = client.post("/api/services/", headers=admin["headers"],
                           json={"name": "Window wash", "price": "99.5", "duration_minutes": 30})

    assert response.status_code == 201
    assert set(response.json) == {"service_id", "name", "price", "duration_minutes"}
    assert response.json["name"] == "Window wash"
    assert response.json["price"] == "99.50"
    assert response.json["duration_minutes"] == 30
    assert [s["service_id"] for s in client.get("/api/services/").json] == [response.json["service_id"]]


def test_a_customer_may_not_create_a_service(app, client):
    customer = register(client)
    before = snapshot(app)

    response = client.post("/api/services/", headers=customer["headers"],
                           json={"name": "Sneaky", "price": "1.00", "duration_minutes": 30})

    assert_json_error(response, 403)
    assert snapshot(app) == before
    assert count(app, Service) == 0


def test_creating_a_service_without_a_token_is_401(app, client):
    response = client.post("/api/services/", json={"name": "Anon", "price": "1.00", "duration_minutes": 30})

    assert_json_error(response, 401)
    assert count(app, Service) == 0


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({"name": "X", "price": 2500, "duration_minutes": 30}, {"price"}),
    ({"name": "X", "price": 25.5, "duration_minutes": 30}, {"price"}),
    ({"name": "X", "price": "abc", "duration_minutes": 30}, {"price"}),
    ({"name": "X", "price": "-1.00", "duration_minutes": 30}, {"price"}),
    ({"name": "X", "price": "1.005", "duration_minutes": 30}, {"price"}),
    ({"name": "X", "price": "1.00\n", "duration_minutes": 30}, {"price"}),
    ({"name": "X", "price": "1.00", "duration_minutes": "30"}, {"duration_minutes"}),
    ({"name": "X", "price": "1.00", "duration_minutes": 1.5}, {"duration_minutes"}),
    ({"name": "X", "price": "1.00", "duration_minutes": True}, {"duration_minutes"}),
    ({"name": "X", "price": "1.00", "duration_minutes": 0}, {"duration_minutes"}),
    ({"name": "", "price": "1.00", "duration_minutes": 30}, {"name"}),
    ({"name": 7, "price": "1.00", "duration_minutes": 30}, {"name"}),
    ({"price": "1.00", "duration_minutes": 30}, {"name"}),
    ({"name": "X", "price": "1.00", "duration_minutes": 30, "currency": "INR"}, {"currency"}),
    ({"name": 7, "price": 1, "duration_minutes": "x"}, {"name", "price", "duration_minutes"}),
])
def test_a_service_with_bad_fields_is_a_400_naming_each_field(app, client, body, bad_fields):
    admin = make_admin(app, client)
    before = snapshot(app)

    response = client.post("/api/services/", headers=admin["headers"], json=body)

    assert set(assert_json_error(response, 400)["fields"]) == bad_fields
    assert snapshot(app) == before
