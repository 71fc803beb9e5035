"""Carts: create, list, read, slot, items, refusals and history (SPEC §3 Carts)."""

from datetime import UTC, datetime

import pytest

from persistence.db import db
from persistence.models import CartItem
from tests.builders import (confirm, future_date, log_in, make_cart, make_payment, make_service, register,
                            start_payment)
from tests.integration.support import (
    assert_json_error,
    delete_cart_directly,
    make_booking,
    set_service_price,
    snapshot,
)


def _create(client, user, **body):
    return client.post("/api/cart/carts/", json=body, headers=user["headers"])


def _add(client, user, cart_id, service_id, quantity=1):
    return client.post(f"/api/cart/carts/{cart_id}/items/", headers=user["headers"],
                       json={"service_id": service_id, "quantity": quantity})


# --- creating and reading -------------------------------------------------------------------------------


def test_an_empty_cart_is_created_active_with_no_items_and_no_slot(app, client):
    user = register(client)

    response = _create(client, user)

    assert response.status_code == 201
    cart = response.json
    assert list(cart) == ["cart_id", "status", "items", "total", "selected_date", "selected_time", "created_at",
                          "updated_at"]
    assert cart["status"] == "ACTIVE"
    assert cart["items"] == []
    assert cart["total"] == "0.00"
    assert (cart["selected_date"], cart["selected_time"]) == (None, None)
    assert cart["created_at"] == cart["updated_at"] == "2030-01-15T12:00:00.000Z"


def test_a_cart_can_be_created_with_its_slot(app, client):
    user = register(client)

    response = _create(client, user, selected_date="2030-01-20", selected_time="09:05")

    assert response.status_code == 201
    assert (response.json["selected_date"], response.json["selected_time"]) == ("2030-01-20", "09:05")


def test_timestamps_keep_milliseconds_and_end_in_z(app, client, clock):
    clock.set(datetime(2030, 1, 15, 7, 8, 9, 123456, tzinfo=UTC))
    user = register(client)

    cart = _create(client, user).json

    assert cart["created_at"] == "2030-01-15T07:08:09.123Z"
    assert client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"]).json["created_at"] == \
        "2030-01-15T07:08:09.123Z"


def test_a_cart_is_read_back_as_it_was_created(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=2)

    response = client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json == cart


def test_the_cart_list_holds_the_callers_carts_that_are_not_deleted(app, client):
    user = register(client)
    other = register(client)
    active = make_cart(app, client, user)
    converted = make_booking(app, client, user)["cart"]
    deleted = make_cart(app, client, user)
    delete_cart_directly(app, deleted["cart_id"])
    make_cart(app, client, other)

    response = client.get("/api/cart/carts/", headers=user["headers"])

    assert response.status_code == 200
    assert sorted(c["cart_id"] for c in response.json) == sorted([active["cart_id"], converted["cart_id"]])
    assert {c["cart_id"]: c["status"] for c in response.json} == {active["cart_id"]: "ACTIVE",
                                                                  converted["cart_id"]: "CONVERTED"}


@pytest.mark.parametrize("status", ["ACTIVE", "CONVERTED"])
def test_the_cart_list_filters_by_status(app, client, status):
    user = register(client)
    carts = {"ACTIVE": make_cart(app, client, user), "CONVERTED": make_booking(app, client, user)["cart"]}

    response = client.get(f"/api/cart/carts/?status={status}", headers=user["headers"])

    assert response.status_code == 200
    assert [c["cart_id"] for c in response.json] == [carts[status]["cart_id"]]


def test_an_unknown_status_filter_is_a_400(app, client):
    user = register(client)

    body = assert_json_error(client.get("/api/cart/carts/?status=BOGUS", headers=user["headers"]), 400)

    assert set(body["fields"]) == {"status"}


@pytest.mark.parametrize("cart_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "123"])
def test_an_unknown_cart_is_a_404(app, client, cart_id):
    user = register(client)

    assert_json_error(client.get(f"/api/cart/carts/{cart_id}/", headers=user["headers"]), 404)


# --- the slot ---------------------------------------------------------------------------------------------


def test_patching_the_slot_changes_it_and_the_updated_at(app, client, clock):
    user = register(client)
    cart = _create(client, user).json
    clock.advance(minutes=5)

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"],
                            json={"selected_date": "2030-02-01", "selected_time": "14:30"})

    assert response.status_code == 200
    assert (response.json["selected_date"], response.json["selected_time"]) == ("2030-02-01", "14:30")
    assert response.json["created_at"] == "2030-01-15T12:00:00.000Z"
    assert response.json["updated_at"] == "2030-01-15T12:05:00.000Z"


def test_patching_only_the_time_keeps_the_date(app, client):
    user = register(client)
    cart = _create(client, user, selected_date="2030-02-01", selected_time="10:00").json

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"],
                            json={"selected_time": "16:45"})

    assert (response.json["selected_date"], response.json["selected_time"]) == ("2030-02-01", "16:45")


def test_today_by_the_service_clock_is_not_in_the_past(app, client):
    user = register(client)

    response = _create(client, user, selected_date="2030-01-15", selected_time="23:00")

    assert response.status_code == 201


def test_a_date_before_today_is_refused_on_create_and_creates_no_cart(app, client):
    user = register(client)
    before = snapshot(app)

    response = _create(client, user, selected_date="2030-01-14", selected_time="10:00")

    assert set(assert_json_error(response, 400)["fields"]) == {"selected_date"}
    assert snapshot(app) == before


def test_the_past_is_judged_by_the_injected_clock_not_the_real_one(app, client, clock):
    user = register(client)
    cart = _create(client, user, selected_date="2030-01-20", selected_time="10:00").json
    clock.set(datetime(2030, 2, 1, 0, 30, tzinfo=UTC))
    user = log_in(client, user)  # two weeks later: the first token has expired
    before = snapshot(app)

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"],
                            json={"selected_date": "2030-01-31"})

    assert set(assert_json_error(response, 400)["fields"]) == {"selected_date"}
    assert snapshot(app) == before


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({"selected_date": "2030/02/01"}, {"selected_date"}),
    ({"selected_date": "01-02-2030"}, {"selected_date"}),
    ({"selected_date": "2030-02-30"}, {"selected_date"}),
    ({"selected_date": "2030-2-1"}, {"selected_date"}),
    ({"selected_date": "2030-02-01T10:00:00"}, {"selected_date"}),
    ({"selected_date": 20300201}, {"selected_date"}),
    ({"selected_time": "25:00"}, {"selected_time"}),
    ({"selected_time": "10:60"}, {"selected_time"}),
    ({"selected_time": "9:30"}, {"selected_time"}),
    ({"selected_time": "10:30:00"}, {"selected_time"}),
    ({"selected_time": 1030}, {"selected_time"}),
    ({"selected_date": True, "selected_time": "noon"}, {"selected_date", "selected_time"}),
    ({"selected_date": "2030-02-01", "note": "x"}, {"note"}),
    ({}, {"body"}),
])
def test_a_bad_slot_is_a_400_naming_each_field_and_changes_nothing(app, client, body, bad_fields):
    user = register(client)
    cart = _create(client, user, selected_date="2030-01-20", selected_time="10:00").json
    before = snapshot(app)

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"], json=body)

    assert set(assert_json_error(response, 400)["fields"]) == bad_fields
    assert snapshot(app) == before


# --- items ------------------------------------------------------------------------------------------------


def test_adding_an_item_copies_name_and_price_and_totals_the_cart(app, client):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client, name="Sofa clean", price="1200.50")

    response = _add(client, user, cart["cart_id"], service["service_id"], quantity=3)

    assert response.status_code == 201
    (item,) = response.json["items"]
    assert list(item) == ["item_id", "service_id", "name", "quantity", "unit_price", "line_total"]
    assert (item["service_id"], item["name"], item["quantity"]) == (service["service_id"], "Sofa clean", 3)
    assert (item["unit_price"], item["line_total"]) == ("1200.50", "3601.50")
    assert response.json["total"] == "3601.50"


def test_adding_a_service_already_in_the_cart_adds_to_its_quantity(app, client):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client, price="10.00")
    first = _add(client, user, cart["cart_id"], service["service_id"], quantity=2).json

    response = _add(client, user, cart["cart_id"], service["service_id"], quantity=5)

    assert response.status_code == 201
    (item,) = response.json["items"]
    assert item["item_id"] == first["items"][0]["item_id"]
    assert item["quantity"] == 7
    assert response.json["total"] == "70.00"


def test_the_total_sums_every_line(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=3, quantity=2, price="100.25")

    assert cart["total"] == "601.50"
    assert [i["line_total"] for i in cart["items"]] == ["200.50"] * 3


def test_the_unit_price_is_copied_when_the_item_is_added(app, client):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client, price="500.00")
    _add(client, user, cart["cart_id"], service["service_id"])
    set_service_price(app, service["service_id"], "900.00")

    response = client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"])

    assert response.json["items"][0]["unit_price"] == "500.00"
    assert response.json["total"] == "500.00"


def test_ninety_nine_of_one_service_is_allowed(app, client):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client, price="1.00")

    response = _add(client, user, cart["cart_id"], service["service_id"], quantity=99)

    assert response.status_code == 201
    assert response.json["items"][0]["quantity"] == 99


@pytest.mark.parametrize("quantity", [0, -1, 100, 10 ** 20, "2", 1.5, 2.0, True, None, [1]])
def test_a_quantity_that_is_not_an_integer_from_1_to_99_is_refused(app, client, quantity):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client)
    before = snapshot(app)

    response = _add(client, user, cart["cart_id"], service["service_id"], quantity=quantity)

    assert set(assert_json_error(response, 400)["fields"]) == {"quantity"}
    assert snapshot(app) == before


def test_a_quantity_that_would_accumulate_past_99_is_refused_and_keeps_the_old_quantity(app, client):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client)
    _add(client, user, cart["cart_id"], service["service_id"], quantity=60)
    before = snapshot(app)

    response = _add(client, user, cart["cart_id"], service["service_id"], quantity=40)

    assert set(assert_json_error(response, 400)["fields"]) == {"quantity"}
    assert snapshot(app) == before
    assert client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"]).json["items"][0][
        "quantity"] == 60


@pytest.mark.parametrize("service_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", 12, None])
def test_an_unknown_or_malformed_service_id_is_a_400_naming_the_field(app, client, service_id):
    user = register(client)
    cart = _create(client, user).json
    before = snapshot(app)

    response = _add(client, user, cart["cart_id"], service_id)

    assert set(assert_json_error(response, 400)["fields"]) == {"service_id"}
    assert snapshot(app) == before


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({"quantity": 1}, {"service_id"}),
    ({"service_id": "00000000-0000-0000-0000-000000000000"}, {"quantity"}),
    ({}, {"service_id", "quantity"}),
])
def test_an_item_with_missing_fields_is_a_400(app, client, body, bad_fields):
    user = register(client)
    cart = _create(client, user).json

    response = client.post(f"/api/cart/carts/{cart['cart_id']}/items/", headers=user["headers"], json=body)

    assert set(assert_json_error(response, 400)["fields"]) == bad_fields


def test_an_item_with_an_extra_field_is_refused(app, client):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client)
    before = snapshot(app)

    response = client.post(f"/api/cart/carts/{cart['cart_id']}/items/", headers=user["headers"],
                           json={"service_id": service["service_id"], "quantity": 1, "unit_price": "0.01"})

    assert set(assert_json_error(response, 400)["fields"]) == {"unit_price"}
    assert snapshot(app) == before


def test_removing_an_item_returns_the_cart_without_it(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=2, price="100.00")
    gone, kept = cart["items"]

    response = client.delete(f"/api/cart/carts/{cart['cart_id']}/items/{gone['item_id']}/",
                             headers=user["headers"])

    assert response.status_code == 200
    assert [i["item_id"] for i in response.json["items"]] == [kept["item_id"]]
    assert response.json["total"] == "100.00"


def test_a_removed_item_is_kept_as_a_record_and_is_in_no_view_total_payment_or_booking(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user, items=2, price="100.00")
    gone, kept = cart["items"]
    clock.advance(minutes=1)

    client.delete(f"/api/cart/carts/{cart['cart_id']}/items/{gone['item_id']}/", headers=user["headers"])

    with app.app_context():
        row = db.session.get(CartItem, gone["item_id"])  # rows are never hard-deleted (SPEC §1)
        assert (row.quantity, row.removed_at) == (1, clock())
    again = client.get(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"]).json
    assert ([i["item_id"] for i in again["items"]], again["total"]) == ([kept["item_id"]], "100.00")
    payment = make_payment(app, client, user, cart["cart_id"])
    assert payment["amount"] == "100.00"
    booking = confirm(app, client, user, payment).json["booking"]
    assert [i["item_id"] for i in booking["items"]] == [kept["item_id"]]
    read_back = client.get(f"/api/bookings/{booking['booking_id']}/", headers=user["headers"]).json
    assert ([i["item_id"] for i in read_back["items"]], read_back["total"]) == ([kept["item_id"]], "100.00")


def test_a_removed_item_cannot_be_removed_again(app, client):
    user = register(client)
    cart = make_cart(app, client, user, items=2)
    path = f"/api/cart/carts/{cart['cart_id']}/items/{cart['items'][0]['item_id']}/"
    client.delete(path, headers=user["headers"])
    before = snapshot(app)

    assert_json_error(client.delete(path, headers=user["headers"]), 404)
    assert snapshot(app) == before


def test_a_service_removed_and_added_again_gets_a_new_line_at_todays_price(app, client):
    user = register(client)
    cart = make_cart(app, client, user, price="100.00")
    first = cart["items"][0]
    client.delete(f"/api/cart/carts/{cart['cart_id']}/items/{first['item_id']}/", headers=user["headers"])
    set_service_price(app, first["service_id"], "120.00")

    response = _add(client, user, cart["cart_id"], first["service_id"], quantity=2)

    assert response.status_code == 201, response.json
    (line,) = response.json["items"]
    assert line["item_id"] != first["item_id"]
    assert (line["quantity"], line["unit_price"], response.json["total"]) == (2, "120.00", "240.00")
    with app.app_context():
        assert db.session.get(CartItem, first["item_id"]).removed_at is not None


def test_a_cart_whose_items_were_all_removed_is_empty_for_payment(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    client.delete(f"/api/cart/carts/{cart['cart_id']}/items/{cart['items'][0]['item_id']}/", headers=user["headers"])

    assert_json_error(start_payment(client, user, cart["cart_id"]), 409, reason="cart_empty")


@pytest.mark.parametrize("item_id", ["00000000-0000-0000-0000-000000000000", "nope"])
def test_removing_an_unknown_item_is_a_404_and_changes_nothing(app, client, item_id):
    user = register(client)
    cart = make_cart(app, client, user)
    before = snapshot(app)

    response = client.delete(f"/api/cart/carts/{cart['cart_id']}/items/{item_id}/", headers=user["headers"])

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_an_item_of_another_cart_of_the_same_user_cannot_be_removed_through_this_cart(app, client):
    user = register(client)
    first = make_cart(app, client, user)
    second = make_cart(app, client, user)
    before = snapshot(app)

    response = client.delete(f"/api/cart/carts/{second['cart_id']}/items/{first['items'][0]['item_id']}/",
                             headers=user["headers"])

    assert_json_error(response, 404)
    assert snapshot(app) == before


# --- refusals: not active, locked by a payment -------------------------------------------------------------


def _changes(cart, service_id):
    """Every kind of change to a cart, as (method, path, body)."""
    base = f"/api/cart/carts/{cart['cart_id']}/"
    return [
        ("PATCH", base, {"selected_time": "18:00"}),
        ("POST", base + "items/", {"service_id": service_id, "quantity": 1}),
        ("POST", base + "items/", {"service_id": cart["items"][0]["service_id"], "quantity": 1}),
        ("DELETE", base + f"items/{cart['items'][0]['item_id']}/", None),
    ]


def _converted(app, client):
    booked = make_booking(app, client)
    return booked["user"], booked["cart"]


def _deleted(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    delete_cart_directly(app, cart["cart_id"])
    return user, cart


def _with_open_payment(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    make_payment(app, client, user, cart["cart_id"])
    return user, cart


@pytest.mark.parametrize(("make", "reason"), [
    (_converted, "cart_not_active"),
    (_deleted, "cart_not_active"),
    (_with_open_payment, "cart_locked_by_payment"),
], ids=["converted", "deleted", "open-payment"])
def test_a_cart_that_is_not_active_or_has_an_open_payment_cannot_be_changed(app, client, make, reason):
    user, cart = make(app, client)
    service = make_service(app, client)
    before = snapshot(app)

    for method, path, body in _changes(cart, service["service_id"]):
        response = client.open(path, method=method, json=body, headers=user["headers"])
        assert_json_error(response, 409, reason=reason)
    assert snapshot(app) == before


def test_cancelling_the_payment_unlocks_the_cart(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"],
                            json={"selected_time": "18:00"})

    assert response.status_code == 200
    assert response.json["selected_time"] == "18:00"


def test_a_failed_payment_does_not_lock_the_cart(app, client):
    from tests.builders import send_webhook

    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    send_webhook(app, client, {"event_id": "evt_fail_1", "event": "payment.failed",
                               "provider_order_id": payment["provider_order_id"], "provider_payment_id": "pay_x"})

    response = client.patch(f"/api/cart/carts/{cart['cart_id']}/", headers=user["headers"],
                            json={"selected_time": "18:00"})

    assert response.status_code == 200


# --- history ----------------------------------------------------------------------------------------------


def test_a_new_cart_has_no_history(app, client):
    user = register(client)
    cart = make_cart(app, client, user)

    response = client.get(f"/api/cart/carts/{cart['cart_id']}/history/", headers=user["headers"])

    assert response.status_code == 200
    assert response.json == []


def test_a_converted_cart_has_one_convert_transition_by_the_customer(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=3)
    confirm(app, client, user, payment)

    response = client.get(f"/api/cart/carts/{cart['cart_id']}/history/", headers=user["headers"])

    assert response.json == [{"from": "ACTIVE", "to": "CONVERTED", "trigger": "convert",
                              "actor": f"user:{user['user_id']}", "at": "2030-01-15T12:03:00.000Z",
                              "accepted": True}]


def test_a_cart_remains_payable_after_its_slot_date_is_set_for_the_future(app, client):
    user = register(client)
    cart = _create(client, user, selected_date=future_date(app, days=1), selected_time="08:00").json
    service = make_service(app, client)
    _add(client, user, cart["cart_id"], service["service_id"])

    assert start_payment(client, user, cart["cart_id"]).status_code == 201


# --- isolation --------------------------------------------------------------------------------------------


def test_another_users_cart_is_not_found_for_every_cart_endpoint_and_nothing_changes(app, client):
    owner = register(client)
    intruder = register(client)
    cart = make_cart(app, client, owner)
    service = make_service(app, client)
    base = f"/api/cart/carts/{cart['cart_id']}/"
    before = snapshot(app)

    attempts = [
        ("GET", base, None),
        ("GET", base + "history/", None),
        ("PATCH", base, {"selected_time": "18:00"}),
        ("POST", base + "items/", {"service_id": service["service_id"], "quantity": 1}),
        ("DELETE", base + f"items/{cart['items'][0]['item_id']}/", None),
    ]
    for method, path, body in attempts:
        response = client.open(path, method=method, json=body, headers=intruder["headers"])
        assert_json_error(response, 404)
    assert snapshot(app) == before
    assert client.get("/api/cart/carts/", headers=intruder["headers"]).json == []


def test_an_item_of_another_users_cart_cannot_be_removed_through_ones_own_cart(app, client):
    owner = register(client)
    intruder = register(client)
    owners_cart = make_cart(app, client, owner)
    intruders_cart = make_cart(app, client, intruder)
    before = snapshot(app)

    response = client.delete(
        f"/api/cart/carts/{intruders_cart['cart_id']}/items/{owners_cart['items'][0]['item_id']}/",
        headers=intruder["headers"])

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_updated_at_moves_with_the_clock_when_an_item_is_added(app, client, clock):
    user = register(client)
    cart = _create(client, user).json
    service = make_service(app, client)
    clock.advance(hours=1, milliseconds=250)

    response = _add(client, user, cart["cart_id"], service["service_id"])

    assert response.json["updated_at"] == "2030-01-15T13:00:00.250Z"
    assert response.json["created_at"] == "2030-01-15T12:00:00.000Z"
