"""DELETE /api/cart/carts/{id}/ (SPEC §3 Cart deletion): stale payments auto-cancelled, fresh ones block with
Retry-After, converted carts refused, nothing ever hard-deleted."""

import pytest

from persistence.models import Payment, TransitionRecord
from tests.builders import make_cart, make_payment, register
from tests.integration.support import (
    assert_json_error,
    cart_row,
    count,
    delete_cart_directly,
    history_rows,
    make_booking,
    payment_row,
    snapshot,
)


def _delete(client, user, cart_id, **kwargs):
    return client.delete(f"/api/cart/carts/{cart_id}/", headers=user["headers"], **kwargs)


def _cart_with_one_payment(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    payment = make_payment(app, client, user, cart["cart_id"])  # created at 2030-01-15T12:00:00.000Z
    return user, cart, payment


# --- deleting ----------------------------------------------------------------------------------------------


def test_a_cart_without_payments_is_deleted_and_the_transition_recorded(app, client):
    user = register(client)
    cart = make_cart(app, client, user)

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json == {"message": "Cart deleted successfully", "deleted_cart_id": cart["cart_id"],
                             "auto_cleanup": None}
    assert cart_row(app, cart["cart_id"]).status == "DELETED"
    assert history_rows(app, "cart", cart["cart_id"]) == [
        ("ACTIVE", "DELETED", "delete", f"user:{user['user_id']}", True)]


def test_a_cart_whose_payments_are_closed_is_deleted_without_cleanup(app, client, clock):
    user, cart, payment = _cart_with_one_payment(app, client)
    client.post(f"/api/payments/{payment['transaction_id']}/cancel/", headers=user["headers"])
    clock.advance(minutes=1)

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json["auto_cleanup"] is None
    assert cart_row(app, cart["cart_id"]).status == "DELETED"


def test_stale_payments_are_cancelled_first_then_the_cart_is_deleted(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    first = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=5)
    second = make_payment(app, client, user, cart["cart_id"])
    clock.advance(minutes=30)  # both stale (35 and 30 minutes old)

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json == {
        "message": "Cart deleted successfully",
        "deleted_cart_id": cart["cart_id"],
        "auto_cleanup": {"cleaned_up": True, "payments_cancelled": 2,
                         "message": "Auto-cancelled 2 pending payment(s) older than 30 minutes"},
    }
    actor = f"user:{user['user_id']}"
    for payment in (first, second):
        assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"
        assert history_rows(app, "payment", payment["transaction_id"])[-1] == (
            "PENDING", "CANCELLED", "timeout", actor, True)
    assert cart_row(app, cart["cart_id"]).status == "DELETED"


def test_nothing_is_hard_deleted(app, client, clock):
    user, cart, payment = _cart_with_one_payment(app, client)
    clock.advance(minutes=31)
    payments, transitions = count(app, Payment), count(app, TransitionRecord)

    assert _delete(client, user, cart["cart_id"]).status_code == 200

    assert count(app, Payment) == payments
    assert count(app, TransitionRecord) == transitions + 2  # one timeout, one delete; none removed
    assert payment_row(app, payment["transaction_id"]).cart_id == cart["cart_id"]
    history = client.get(f"/api/payments/{payment['transaction_id']}/history/", headers=user["headers"])
    assert [h["trigger"] for h in history.json] == ["submit", "timeout"]


def test_the_cleanup_message_names_the_configured_timeout(make_app, app, clock):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=45)
    client = configured.test_client()
    user, cart, _ = _cart_with_one_payment(configured, client)
    clock.advance(minutes=45)

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json["auto_cleanup"] == {"cleaned_up": True, "payments_cancelled": 1,
                                             "message": "Auto-cancelled 1 pending payment(s) older than 45 minutes"}


def test_a_fractional_timeout_prints_as_written(make_app, app, clock):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=0.5)
    client = configured.test_client()
    user, cart, _ = _cart_with_one_payment(configured, client)
    clock.advance(seconds=20)

    blocked = _delete(client, user, cart["cart_id"])
    clock.advance(seconds=10)
    deleted = _delete(client, user, cart["cart_id"])

    assert blocked.status_code == 409
    assert blocked.headers["Retry-After"] == "10"
    assert deleted.status_code == 200
    assert deleted.json["auto_cleanup"]["message"] == "Auto-cancelled 1 pending payment(s) older than 0.5 minutes"


# --- blocked by fresh payments -------------------------------------------------------------------------------


@pytest.mark.parametrize("age, retry_after_seconds, wait, floored_age, message", [
    (dict(minutes=15), "900", 15, 15,
     "Cart has pending payment(s). Please wait 15 more minute(s) before deletion or complete the payment."),
    (dict(minutes=15, seconds=20), "880", 14, 15,
     "Cart has pending payment(s). Please wait 14 more minute(s) before deletion or complete the payment."),
    (dict(minutes=29, seconds=30), "30", 0, 29,
     "Cart has pending payment(s). Please wait less than 1 minute before deletion."),
    (dict(minutes=29, seconds=59, milliseconds=999), "1", 0, 29,
     "Cart has pending payment(s). Please wait less than 1 minute before deletion."),
    (dict(minutes=10, seconds=0, milliseconds=1), "1200", 19, 10,
     "Cart has pending payment(s). Please wait 19 more minute(s) before deletion or complete the payment."),
])
def test_a_fresh_payment_blocks_deletion_with_retry_after_in_whole_seconds_rounded_up(
        app, client, clock, age, retry_after_seconds, wait, floored_age, message):
    user, cart, _ = _cart_with_one_payment(app, client)
    clock.advance(**age)
    before = snapshot(app)

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 409
    assert response.mimetype == "application/json"
    assert response.headers["Retry-After"] == retry_after_seconds
    assert response.json == {
        "error": "Cannot delete cart with recent pending payments",
        "detail": message,
        "can_delete": False,
        "reason": "pending_payment_wait",
        "wait_time_minutes": wait,
        "retry_after": "2030-01-15T12:30:00.000Z",
        "payment_count": 1,
        "latest_payment_age_minutes": floored_age,
        "auto_cleanup": None,
    }
    assert snapshot(app) == before


def test_stale_payments_cancelled_before_a_409_stay_cancelled(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    stale_one = make_payment(app, client, user, cart["cart_id"])    # 12:00
    stale_two = make_payment(app, client, user, cart["cart_id"])    # 12:00
    clock.advance(minutes=20)
    fresh = make_payment(app, client, user, cart["cart_id"])        # 12:20
    clock.advance(minutes=10, seconds=5)                            # 12:30:05

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 409
    assert response.headers["Retry-After"] == str(19 * 60 + 55)
    assert response.json == {
        "error": "Cannot delete cart with recent pending payments",
        "detail": "Cart has pending payment(s). Please wait 19 more minute(s) before deletion or complete the payment.",
        "can_delete": False,
        "reason": "pending_payment_wait",
        "wait_time_minutes": 19,
        "retry_after": "2030-01-15T12:50:00.000Z",
        "payment_count": 1,
        "latest_payment_age_minutes": 10,
        "auto_cleanup": {"cleaned_up": True, "payments_cancelled": 2,
                         "message": "Auto-cancelled 2 pending payment(s) older than 30 minutes"},
    }
    for stale in (stale_one, stale_two):
        assert payment_row(app, stale["transaction_id"]).status == "CANCELLED"
        assert history_rows(app, "payment", stale["transaction_id"])[-1][2] == "timeout"
    assert payment_row(app, fresh["transaction_id"]).status == "PENDING"
    assert cart_row(app, cart["cart_id"]).status == "ACTIVE"
    assert history_rows(app, "cart", cart["cart_id"]) == []

    again = _delete(client, user, cart["cart_id"])  # nothing left to clean up

    assert again.status_code == 409
    assert again.json["auto_cleanup"] is None


def test_several_fresh_payments_block_with_the_plural_message(app, client, clock):
    user = register(client)
    cart = make_cart(app, client, user)
    for _ in range(3):
        make_payment(app, client, user, cart["cart_id"])
        clock.advance(minutes=2)

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 409
    assert response.headers["Retry-After"] == str(28 * 60)
    assert response.json["detail"] == ("Cart has 3 pending payment(s). Please wait 28 more minute(s) before "
                                       "deletion or complete the payments.")
    assert response.json["payment_count"] == 3


def test_once_the_wait_is_over_the_same_cart_can_be_deleted(app, client, clock):
    user, cart, payment = _cart_with_one_payment(app, client)
    clock.advance(minutes=15)
    blocked = _delete(client, user, cart["cart_id"])
    clock.advance(seconds=int(blocked.headers["Retry-After"]))

    response = _delete(client, user, cart["cart_id"])

    assert response.status_code == 200
    assert response.json["auto_cleanup"]["payments_cancelled"] == 1
    assert payment_row(app, payment["transaction_id"]).status == "CANCELLED"


# --- refusals ---------------------------------------------------------------------------------------------------


def test_a_converted_cart_cannot_be_deleted_and_the_answer_names_its_booking(app, client, clock):
    booked = make_booking(app, client)
    clock.advance(hours=2)
    before = snapshot(app)

    response = _delete(client, booked["user"], booked["cart"]["cart_id"])

    body = assert_json_error(response, 409, reason="cart_converted", booking_id=booked["booking"]["booking_id"])
    assert body["error"] == "Cannot delete a converted cart"
    assert "Retry-After" not in response.headers
    assert snapshot(app) == before


def test_deleting_a_deleted_cart_again_is_a_409_and_changes_nothing(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    assert _delete(client, user, cart["cart_id"]).status_code == 200
    before = snapshot(app)

    response = _delete(client, user, cart["cart_id"])

    assert_json_error(response, 409, reason="cart_not_active")
    assert snapshot(app) == before


def test_a_deleted_cart_leaves_the_list_but_can_still_be_read(app, client):
    user = register(client)
    kept = make_cart(app, client, user)
    gone = make_cart(app, client, user)

    assert _delete(client, user, gone["cart_id"]).status_code == 200

    listed = client.get("/api/cart/carts/", headers=user["headers"])
    assert [c["cart_id"] for c in listed.json] == [kept["cart_id"]]
    read = client.get(f"/api/cart/carts/{gone['cart_id']}/", headers=user["headers"])
    assert read.status_code == 200
    assert read.json["status"] == "DELETED"
    assert read.json["items"] == gone["items"]


def test_another_users_cart_is_not_found_and_unchanged(app, client, clock):
    owner, cart, _ = _cart_with_one_payment(app, client)
    stranger = register(client)
    clock.advance(hours=1)  # the owner's payment is stale: a leak would cancel it
    before = snapshot(app)

    response = _delete(client, stranger, cart["cart_id"])

    assert_json_error(response, 404)
    assert snapshot(app) == before


def test_an_unknown_cart_is_not_found(app, client):
    user = register(client)

    assert_json_error(_delete(client, user, "00000000-0000-0000-0000-000000000000"), 404)
    assert_json_error(_delete(client, user, "not-a-uuid"), 404)


def test_an_oversized_body_is_a_413_and_changes_nothing(app, client, clock):
    user, cart, _ = _cart_with_one_payment(app, client)
    clock.advance(hours=1)
    before = snapshot(app)

    response = _delete(client, user, cart["cart_id"], data=b'{"x": "' + b"a" * (70 * 1024) + b'"}',
                       content_type="application/json")

    assert_json_error(response, 413)
    assert snapshot(app) == before


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"a": NaN}', b"\xff\xfe"])
def test_a_malformed_json_body_is_a_400_and_changes_nothing(app, client, clock, raw):
    user, cart, _ = _cart_with_one_payment(app, client)
    clock.advance(hours=1)
    before = snapshot(app)

    response = _delete(client, user, cart["cart_id"], data=raw, content_type="application/json")

    assert_json_error(response, 400)
    assert snapshot(app) == before


def test_an_empty_json_object_body_is_accepted(app, client):
    user = register(client)
    cart = make_cart(app, client, user)

    response = _delete(client, user, cart["cart_id"], json={})

    assert response.status_code == 200


def test_deleting_needs_a_token(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    before = snapshot(app)

    assert_json_error(client.delete(f"/api/cart/carts/{cart['cart_id']}/"), 401)
    assert snapshot(app) == before


def test_a_cart_already_deleted_through_the_writer_is_refused_as_not_active(app, client):
    user = register(client)
    cart = make_cart(app, client, user)
    delete_cart_directly(app, cart["cart_id"])

    assert_json_error(_delete(client, user, cart["cart_id"]), 409, reason="cart_not_active")
