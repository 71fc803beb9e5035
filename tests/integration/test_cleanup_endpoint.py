"""POST /api/cart/carts/{id}/cleanup_old_payments/ (SPEC §3 Cart deletion): cancel the cart's stale payments."""

import pytest

from tests.builders import make_cart, make_payment, register
from tests.integration.support import (
    assert_json_error,
    cart_row,
    history_rows,
    make_booking,
    payment_row,
    snapshot,
)


def _cleanup(client, user, cart_id, **kwargs):
    return client.post(f"/api/cart/carts/{cart_id}/cleanup_old_payments/", headers=user["headers"], **kwargs)


def test_a_stale_payment_is_cancelled_and_the_cart_can_be_deleted_now(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=30)

    response = _cleanup(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json == {
        "cleanup_performed": True,
        "payments_cancelled": 1,
        "message": "Auto-cancelled 1 pending payment(s) older than 30 minutes",
        "can_delete_now": True,
        "deletion_info": {"can_delete": True, "reason": "no_pending_payments",
                          "message": "Cart has no pending payments and can be deleted."},
    }
    assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"
    assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
        "PENDING", "CANCELLED", "timeout", f"user:{user['user_id']}", True)
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"  # cleaned up, not deleted


def test_with_only_fresh_payments_nothing_is_cancelled_and_the_wait_is_reported(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=12, seconds=30)
    before = snapshot(app)

    response = _cleanup(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json == {
        "cleanup_performed": False,
        "payments_cancelled": 0,
        "message": "No pending payments older than 30 minutes",
        "can_delete_now": False,
        "deletion_info": {
            "can_delete": False,
            "reason": "pending_payment_wait",
            "message": "Cart has pending payment(s). Please wait 17 more minute(s) before deletion "
                       "or complete the payment.",
            "wait_time_minutes": 17,
            "retry_after": "2030-01-15T12:30:00.000Z",
            "payment_count": 1,
            "latest_payment_age_minutes": 12,
        },
    }
    assert snapshot(app) == before


def test_stale_ones_are_cancelled_while_a_fresh_one_still_blocks(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    stale = [make_payment(app, client, user, cart["cart_id"]) for _ in range(2)]
    clock.advance(minutes=25)
    fresh = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=5)

    response = _cleanup(client, user, cart["cart_id"])

    assert response.status_code == 200
    body = response.json
    assert (body["cleanup_performed"], body["payments_cancelled"], body["can_delete_now"]) == (True, 2, False)
    assert body["message"] == "Auto-cancelled 2 pending payment(s) older than 30 minutes"
    assert body["deletion_info"]["reason"] == "pending_payment_wait"
    assert body["deletion_info"]["payment_count"] == 1
    assert body["deletion_info"]["retry_after"] == "2030-01-15T12:55:00.000Z"
    assert [payment_row(app, p["transaction_id"]).status for p in stale] == ["CANCELLED", "CANCELLED"]
    assert payment_row(app, fresh["transaction_id"]).status == "PENDING"


def test_a_cart_without_payments_reports_nothing_to_clean_and_can_be_deleted(app, client):
    user = register(client)
    cart = make_cart(app, client, user)

    response = _cleanup(client, user, cart["cart_id"])

    assert response.json == {
        "cleanup_performed": False,
        "payments_cancelled": 0,
        "message": "No pending payments older than 30 minutes",
        "can_delete_now": True,
        "deletion_info": {"can_delete": True, "reason": "no_payments",
                          "message": "Cart has no payments and can be deleted."},
    }


def test_a_second_cleanup_finds_nothing_left(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    make_payment(app, client, user, cart["cart_id"])
    clock.advance(hours=1)
    assert _cleanup(client, user, cart["cart_id"]).json["payments_cancelled"] == 1
    before = snapshot(app)

    response = _cleanup(client, user, cart["cart_id"])

    assert (response.json["cleanup_performed"], response.json["payments_cancelled"]) == (False, 0)
    assert response.json["message"] == "No pending payments older than 30 minutes"
    assert response.json["can_delete_now"] is True
    assert snapshot(app) == before


def test_a_converted_cart_has_nothing_to_clean_and_cannot_be_deleted(app, client, clock):
    booked = make_booking(app, client)
    clock.advance(hours=1)
    before = snapshot(app)

    response = _cleanup(client, booked["user"], booked["cart"]["cart_id"])

    assert response.status_code == 200
    assert response.json["cleanup_performed"] is False
    assert response.json["can_delete_now"] is False
    assert response.json["deletion_info"] == {
        "can_delete": False, "reason": "cart_converted",
        "message": "Cart has been converted to a booking and cannot be deleted."}
    assert snapshot(app) == before


def test_cleanup_only_touches_the_named_cart(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    other_cart = make_cart(app, client, user)
    mine = make_payment(app, client, user, cart["cart_id"])
    other = make_payment(app, client, user, other_cart["cart_id"])
    clock.advance(hours=1)

    _cleanup(client, user, cart["cart_id"])

    assert payment_row(app, mine["transaction_id"]).status == "CANCELLED"
    assert payment_row(app, other["transaction_id"]).status == "PENDING"


@pytest.mark.parametrize("timeout, label", [(0.5, "0.5"), (45, "45"), ("90", "90")])
def test_the_messages_name_the_configured_timeout(make_app, app, clock, timeout, label):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=timeout)
    client = configured.test_client()
    user = register(client)
    cart = make_cart(configured, client, user)
    make_payment(configured, client, user, cart["cart_id"])

    nothing = _cleanup(client, user, cart["cart_id"])
    clock.advance(hours=2)
    something = _cleanup(client, user, cart["cart_id"])

    assert nothing.json["message"] == f"No pending payments older than {label} minutes"
    assert something.json["message"] == f"Auto-cancelled 1 pending payment(s) older than {label} minutes"


def test_another_users_cart_is_not_found_and_unchanged(app, client, clock):
    owner = register(client)
    cart = make_cart(app, client, owner)
    make_payment(app, client, owner, cart["cart_id"])
    stranger = register(client)
    clock.advance(hours=1)
    before = snapshot(app)

    response = _cleanup(client, stranger, cart["cart_id"])

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_a_malformed_body_is_a_400_and_changes_nothing(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    make_payment(app, client, user, cart["cart_id"])
    clock.advance(hours=1)
    before = snapshot(app)

    response = _cleanup(client, user, cart["cart_id"], data=b"{nope", content_type="application/json")

    assert_json_error(response, 400)
    assert snapshot(app) == before
