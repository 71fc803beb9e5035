"""The longest spans the configuration accepts (web.config.MAX_MINUTES, about 100 years) are served without a 500."""

from tests.builders import make_payment, register
from tests.integration.support import assert_json_error
from web.config import MAX_MINUTES


def test_with_the_longest_payment_timeout_payments_and_cart_deletion_still_answer(make_app, app):
    configured = make_app(PAYMENT_TIMEOUT_MINUTES=MAX_MINUTES)
    client = configured.test_client()
    user = register(client)
    payment = make_payment(configured, client, user)
    cart_path = f"/api/cart/carts/{payment['cart_id']}"

    assert payment["expires_at"] == "2129-12-22T12:00:00.000Z"  # 36,500 days after the FakeClock's start
    assert client.get(f"/api/payments/{payment['transaction_id']}/", headers=user["headers"]).status_code == 200
    status = client.get(f"{cart_path}/deletion_status/", headers=user["headers"])
    assert status.status_code == 200 and status.json["can_delete"] is False
    assert client.post(f"{cart_path}/cleanup_old_payments/", headers=user["headers"]).status_code == 200
    assert_json_error(client.delete(f"{cart_path}/", headers=user["headers"]), 409)


def test_with_the_longest_login_failure_window_a_wrong_password_is_still_a_401(make_app, app):
    configured = make_app(LOGIN_FAILURE_WINDOW_MINUTES=MAX_MINUTES)
    client = configured.test_client()
    user = register(client)

    response = client.post("/api/auth/token", json={"email": user["email"], "password": "wrong-password"})

    assert_json_error(response, 401)


def test_with_the_longest_token_lifetime_a_token_is_issued_and_works(make_app, app):
    configured = make_app(TOKEN_TTL_MINUTES=MAX_MINUTES)
    client = configured.test_client()
    user = register(client)

    assert user["expires_at"] == "2129-12-22T12:00:00.000Z"
    assert client.get("/api/bookings/", headers=user["headers"]).status_code == 200
