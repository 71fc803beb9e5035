"""GET /api/cart/carts/{id}/deletion_status/ (SPEC §3 Cart deletion): the timing rules at their edges, read only."""

import pytest

from tests.builders import confirm, make_cart, make_payment, register, send_webhook
from tests.integration.support import assert_json_error, delete_cart_directly, make_booking, snapshot

STALE_MESSAGE = "Cart has {n} pending payment(s) older than {t} minutes; they will be auto-cancelled on deletion."


def _status(client, user, cart_id):
    response = client.get(f"/api/cart/carts/{cart_id}/deletion_status/", headers=user["headers"])
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def _cart_with_one_payment(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])  # created at 2030-01-15T12:00:00.000Z
    return user, cart, payment


# --- one fresh payment, at the minute edges ----------------------------------------------------------------


@pytest.mark.parametrize("age, wait, floored_age, message", [
    (dict(minutes=15), 15, 15,
     "Cart has pending payment(s). Please wait 15 more minute(s) before deletion or complete the payment."),
    (dict(minutes=15, seconds=20), 14, 15,
     "Cart has pending payment(s). Please wait 14 more minute(s) before deletion or complete the payment."),
    (dict(minutes=29, seconds=30), 0, 29,
     "Cart has pending payment(s). Please wait less than 1 minute before deletion."),
    (dict(minutes=29, seconds=59, milliseconds=999), 0, 29,
     "Cart has pending payment(s). Please wait less than 1 minute before deletion."),
    (dict(seconds=0), 30, 0,
     "Cart has pending payment(s). Please wait 30 more minute(s) before deletion or complete the payment."),
])
def test_a_fresh_payment_blocks_deletion_with_floored_minutes_and_the_exact_retry_time(
        app, client, clock, age, wait, floored_age, message):
    user, cart, payment = _cart_with_one_payment(app, client)
    clock.advance(**age)

    body = _status(client, user, cart["cart_id"])

    assert body["can_delete"] is False
    assert body["deletion_info"] == {
        "can_delete": False,
        "reason": "pending_payment_wait",
        "message": message,
        "wait_time_minutes": wait,
        "retry_after": "2030-01-15T12:30:00.000Z",
        "payment_count": 1,
        "latest_payment_age_minutes": floored_age,
    }
    assert body["payments"][0]["age_minutes"] == floored_age


def test_a_payment_exactly_at_the_timeout_is_stale_and_the_cart_can_be_deleted(app, client, clock):
    user, cart, _ = _cart_with_one_payment(app, client)
    clock.advance(minutes=30)

    body = _status(client, user, cart["cart_id"])

    assert body["can_delete"] is True
    assert body["deletion_info"] == {"can_delete": True, "reason": "stale_pending_payments",
                                     "message": STALE_MESSAGE.format(n=1, t=30)}
    assert body["payments"][0]["status"] == "PENDING"  # stale, but only the sweep or DELETE cancels it
    assert body["payments"][0]["age_minutes"] == 30


def test_a_millisecond_before_the_timeout_the_payment_is_still_fresh(app, client, clock):
    user, cart, _ = _cart_with_one_payment(app, client)
    clock.advance(minutes=29, seconds=59, milliseconds=999)
    assert _status(client, user, cart["cart_id"])["deletion_info"]["reason"] == "pending_payment_wait"
    clock.advance(milliseconds=1)
    assert _status(client, user, cart["cart_id"])["deletion_info"]["reason"] == "stale_pending_payments"


def test_the_whole_status_body_lists_the_payment_with_its_fields(app, client, clock):
    user, cart, payment = _cart_with_one_payment(app, client)
    clock.advance(minutes=15)

    body = _status(client, user, cart["cart_id"])

    assert list(body) == ["can_delete", "cart_status", "payments_count", "payments", "deletion_info"]
    assert body["cart_status"] == "ACTIVE"
    assert body["payments_count"] == 1
    assert body["payments"] == [{
        "transaction_id": payment["transaction_id"],
        "status": "PENDING",
        "amount": "2500.00",
        "created_at": "2030-01-15T12:00:00.000Z",
        "age_minutes": 15,
        "has_booking": False,
    }]


# --- several payments ----------------------------------------------------------------------------------------


def test_with_mixed_ages_the_newest_fresh_open_payment_decides_and_only_fresh_ones_count(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    stale = make_payment(app, client, user, cart["cart_id"])                     # 12:00
    clock.advance(minutes=10)
    older_fresh = make_payment(app, client, user, cart["cart_id"])               # 12:10
    clock.advance(minutes=10)
    newest_fresh = make_payment(app, client, user, cart["cart_id"])              # 12:20
    clock.advance(minutes=5)
    closed = make_payment(app, client, user, cart["cart_id"])                    # 12:25, then cancelled
    assert client.post(f"/api/payments/{closed['transaction_id']}/cancel/", headers=user["headers"]).status_code \
        == 200
    clock.advance(minutes=10, seconds=30)                                        # now 12:35:30

    body = _status(client, user, cart["cart_id"])

    assert body["deletion_info"] == {
        "can_delete": False,
        "reason": "pending_payment_wait",
        "message": "Cart has 2 pending payment(s). Please wait 14 more minute(s) before deletion "
                   "or complete the payments.",
        "wait_time_minutes": 14,
        "retry_after": "2030-01-15T12:50:00.000Z",
        "payment_count": 2,
        "latest_payment_age_minutes": 15,
    }
    assert body["payments_count"] == 4
    assert [(p["transaction_id"], p["status"], p["age_minutes"]) for p in body["payments"]] == [
        (closed["transaction_id"], "CANCELLED", 10),
        (newest_fresh["transaction_id"], "PENDING", 15),
        (older_fresh["transaction_id"], "PENDING", 25),
        (stale["transaction_id"], "PENDING", 35),
    ]


def test_three_fresh_payments_use_the_plural_message(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    for _ in range(3):
        make_payment(app, client, user, cart["cart_id"])
        clock.advance(minutes=5)
    clock.advance(minutes=5)  # the newest is 10 minutes old

    info = _status(client, user, cart["cart_id"])["deletion_info"]

    assert info["message"] == ("Cart has 3 pending payment(s). Please wait 20 more minute(s) before deletion "
                               "or complete the payments.")
    assert (info["payment_count"], info["wait_time_minutes"], info["latest_payment_age_minutes"]) == (3, 20, 10)
    assert info["retry_after"] == "2030-01-15T12:40:00.000Z"


def test_three_fresh_payments_with_less_than_a_minute_left_use_the_plural_short_form(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    for _ in range(3):
        make_payment(app, client, user, cart["cart_id"])
        clock.advance(seconds=10)
    clock.advance(minutes=29, seconds=15)  # the newest (12:00:20) is 29:25 old

    info = _status(client, user, cart["cart_id"])["deletion_info"]

    assert info["message"] == "Cart has 3 pending payment(s). Please wait less than 1 minute before deletion."
    assert (info["payment_count"], info["wait_time_minutes"], info["latest_payment_age_minutes"]) == (3, 0, 29)
    assert info["retry_after"] == "2030-01-15T12:30:20.000Z"


def test_several_stale_payments_are_counted_in_the_stale_message(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    make_payment(app, client, user, cart["cart_id"])
    make_payment(app, client, user, cart["cart_id"])
    clock.advance(hours=2)

    info = _status(client, user, cart["cart_id"])["deletion_info"]

    assert info == {"can_delete": True, "reason": "stale_pending_payments", "message": STALE_MESSAGE.format(n=2, t=30)}


# --- nothing pending -----------------------------------------------------------------------------------------


def test_a_cart_without_payments_can_be_deleted(app, client):
    user = register(client)
    cart = make_cart(app, client, user)

    body = _status(client, user, cart["cart_id"])

    assert body == {"can_delete": True, "cart_status": "ACTIVE", "payments_count": 0, "payments": [],
                    "deletion_info": {"can_delete": True, "reason": "no_payments",
                                      "message": "Cart has no payments and can be deleted."}}


def test_a_cart_whose_payments_are_all_closed_can_be_deleted(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    cancelled = make_payment(app, client, user, cart["cart_id"])
    client.post(f"/api/payments/{cancelled['transaction_id']}/cancel/", headers=user["headers"])
    clock.advance(minutes=1)
    failed = make_payment(app, client, user, cart["cart_id"])
    assert send_webhook(app, client, {"event_id": "evt_f", "event": "payment.failed",
                                      "provider_order_id": failed["provider_order_id"],
                                      "provider_payment_id": "pay_f"}).status_code == 200
    clock.advance(minutes=1)

    body = _status(client, user, cart["cart_id"])

    assert body["deletion_info"] == {"can_delete": True, "reason": "no_pending_payments",
                                     "message": "Cart has no pending payments and can be deleted."}
    assert [(p["transaction_id"], p["status"]) for p in body["payments"]] == [
        (failed["transaction_id"], "FAILED"), (cancelled["transaction_id"], "CANCELLED")]


def test_a_converted_cart_cannot_be_deleted_and_its_paid_payment_has_the_booking(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    superseded = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=1)
    paid = make_payment(app, client, user, cart["cart_id"])
    assert confirm(app, client, user, paid).status_code == 200
    clock.advance(minutes=2, seconds=59)

    body = _status(client, user, cart["cart_id"])

    assert body["can_delete"] is False
    assert body["cart_status"] == "CONVERTED"
    assert body["deletion_info"] == {"can_delete": False, "reason": "cart_converted",
                                     "message": "Cart has been converted to a booking and cannot be deleted."}
    assert [(p["transaction_id"], p["status"], p["age_minutes"], p["has_booking"]) for p in body["payments"]] == [
        (paid["transaction_id"], "SUCCESS", 2, True),
        (superseded["transaction_id"], "CANCELLED", 3, False),
    ]


def test_a_deleted_cart_says_so(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    delete_cart_directly(app, cart["cart_id"])

    body = _status(client, user, cart["cart_id"])

    assert body["can_delete"] is False
    assert body["cart_status"] == "DELETED"
    assert body["deletion_info"] == {"can_delete": False, "reason": "cart_deleted",
                                     "message": "Cart is already deleted."}


# --- configuration, read-only, refusals ------------------------------------------------------------------------


def test_a_fractional_timeout_is_used_to_the_second(make_app, app, clock):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=0.5)
    client = configured.test_client()
    user, cart, _ = _cart_with_one_payment(configured, client)
    clock.advance(seconds=20)

    fresh = _status(client, user, cart["cart_id"])["deletion_info"]
    clock.advance(seconds=10)
    stale = _status(client, user, cart["cart_id"])["deletion_info"]

    assert fresh == {"can_delete": False, "reason": "pending_payment_wait",
                     "message": "Cart has pending payment(s). Please wait less than 1 minute before deletion.",
                     "wait_time_minutes": 0, "retry_after": "2030-01-15T12:00:30.000Z", "payment_count": 1,
                     "latest_payment_age_minutes": 0}
    assert stale == {"can_delete": True, "reason": "stale_pending_payments",
                     "message": STALE_MESSAGE.format(n=1, t="0.5")}


def test_a_longer_timeout_lengthens_the_wait(make_app, app, clock):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=45)
    client = configured.test_client()
    user, cart, _ = _cart_with_one_payment(configured, client)
    clock.advance(minutes=40)

    info = _status(client, user, cart["cart_id"])["deletion_info"]

    assert (info["wait_time_minutes"], info["retry_after"]) == (5, "2030-01-15T12:45:00.000Z")


def test_deletion_status_changes_nothing_even_with_stale_payments(app, client, clock):
    user, cart, _ = _cart_with_one_payment(app, client)
    make_payment(app, client, user, cart["cart_id"])
    clock.advance(hours=1)
    before = snapshot(app)

    _status(client, user, cart["cart_id"])
    _status(client, user, cart["cart_id"])

    assert snapshot(app) == before


def test_another_users_cart_is_not_found_and_unchanged(app, client, clock):
    owner, cart, _ = _cart_with_one_payment(app, client)
    stranger = register(client)
    clock.advance(hours=1)
    before = snapshot(app)

    response = client.get(f"/api/cart/carts/{cart['cart_id']}/deletion_status/", headers=stranger["headers"])

    assert_json_error(response, 404)
    assert "can_delete" not in response.json
    assert snapshot(app) == before


@pytest.mark.parametrize("cart_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00", "1' OR '1'='1"])
def test_an_unknown_or_malformed_cart_id_is_not_found(app, client, cart_id):
    user = register(client)

    response = client.get(f"/api/cart/carts/{cart_id}/deletion_status/", headers=user["headers"])

    assert_json_error(response, 404)


def test_deletion_status_needs_a_token(app, client):
    user, cart, _ = _cart_with_one_payment(app, client)

    assert_json_error(client.get(f"/api/cart/carts/{cart['cart_id']}/deletion_status/"), 401)


def test_a_booked_cart_from_the_support_builder_reports_its_booking(app, client):
    booked = make_booking(app, client)

    body = _status(client, booked["user"], booked["cart"]["cart_id"])

    assert [(p["transaction_id"], p["has_booking"]) for p in body["payments"]] == [
        (booked["payment"]["transaction_id"], True)]
