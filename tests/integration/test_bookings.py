"""Bookings, read only (SPEC §3 Bookings)."""

import pytest

from tests.builders import register
from tests.integration.support import assert_json_error, make_booking, snapshot


def test_a_customer_without_bookings_sees_an_empty_list(app, client):
    user = register(client)

    response = client.get("/api/bookings/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json == []


def test_a_booking_has_the_fields_of_the_spec(app, client, clock):
    booked = make_booking(app, client, items=2, quantity=1, price="75.50")

    response = client.get(f"/api/bookings/{booked['booking']['booking_id']}/", headers=booked["user"]["headers"])

    assert response.status_code == 200
    booking = response.json
    assert list(booking) == ["booking_id", "cart_id", "transaction_id", "status", "selected_date", "selected_time",
                             "items", "total", "created_at"]
    assert booking["cart_id"] == booked["cart"]["cart_id"]
    assert booking["transaction_id"] == booked["payment"]["transaction_id"]
    assert booking["status"] == "CONFIRMED"
    assert (booking["selected_date"], booking["selected_time"]) == ("2030-01-22", "10:30")
    assert [(i["quantity"], i["unit_price"], i["line_total"]) for i in booking["items"]] == [
        (1, "75.50", "75.50"), (1, "75.50", "75.50")]
    assert booking["total"] == "151.00"
    assert booking["created_at"] == "2030-01-15T12:00:00.000Z"


def test_the_booking_list_holds_only_the_callers_bookings(app, client):
    alice = register(client)
    bob = register(client)
    first = make_booking(app, client, alice)
    second = make_booking(app, client, alice)
    make_booking(app, client, bob)

    response = client.get("/api/bookings/", headers=alice["headers"])

    assert response.status_code == 200
    assert sorted(b["booking_id"] for b in response.json) == sorted(
        [first["booking"]["booking_id"], second["booking"]["booking_id"]])


def test_another_users_booking_is_not_found(app, client):
    booked = make_booking(app, client)
    intruder = register(client)
    before = snapshot(app)

    response = client.get(f"/api/bookings/{booked['booking']['booking_id']}/", headers=intruder["headers"])

    assert_json_error(response, 404)
    assert client.get("/api/bookings/", headers=intruder["headers"]).json == []
    assert snapshot(app) == before


@pytest.mark.parametrize("booking_id", ["00000000-0000-0000-0000-000000000000", "nope"])
def test_an_unknown_booking_is_a_404(app, client, booking_id):
    user = register(client)

    assert_json_error(client.get(f"/api/bookings/{booking_id}/", headers=user["headers"]), 404)


def test_bookings_need_a_token(app, client):
    booked = make_booking(app, client)

    assert_json_error(client.get("/api/bookings/"), 401)
    assert_json_error(client.get(f"/api/bookings/{booked['booking']['booking_id']}/"), 401)
