"""Builders for test data, through the public API wherever the API can make it.

Signatures and webhooks are the app's gateway's: the offline gateway's, or
with GATEWAY=razorpay Razorpay's (signed with the app's RAZORPAY_* secrets,
bodies in Razorpay's shape, payments made at the sandbox).
"""

import hashlib
import hmac
import itertools
import json
import urllib.request
from datetime import date, timedelta

from persistence import accounts
from persistence.db import db
from tests.razorpay_sandbox import event_body, webhook_request

_seq = itertools.count(1)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def register(client, email: str | None = None, password: str = "correct-horse") -> dict:
    """A new customer; returns {"user_id", "email", "token", "headers"}."""
    email = email or f"customer{next(_seq)}@example.com"
    response = client.post("/api/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.json
    return {**response.json, "headers": auth(response.json["token"])}


def log_in(client, user: dict, password: str = "correct-horse") -> dict:
    """The same customer with a new token (after the clock moved past the old one's expiry, say)."""
    response = client.post("/api/auth/token", json={"email": user["email"], "password": password})
    assert response.status_code == 200, response.json
    return {**user, **response.json, "headers": auth(response.json["token"])}


def make_admin(app, client, email: str | None = None) -> dict:
    email = email or f"admin{next(_seq)}@example.com"
    with app.app_context():
        accounts.create_user(email, "admin-password", now=app.config["CLOCK"](), is_admin=True,
                             hash_method=app.config["PASSWORD_HASH_METHOD"])
        db.session.commit()
    token = client.post("/api/auth/token", json={"email": email, "password": "admin-password"}).json["token"]
    return {"email": email, "token": token, "headers": auth(token)}


def make_service(app, client, name: str | None = None, price: str = "2500.00", duration_minutes: int = 60) -> dict:
    admin = make_admin(app, client)
    response = client.post("/api/services/", headers=admin["headers"],
                           json={"name": name or f"Service {next(_seq)}", "price": price,
                                 "duration_minutes": duration_minutes})
    assert response.status_code == 201, response.json
    return response.json


def future_date(app, days: int = 7) -> str:
    return (app.config["CLOCK"]().date() + timedelta(days=days)).isoformat()


def make_cart(app, client, user: dict, items: int = 1, slot: bool = True, quantity: int = 1,
              price: str = "2500.00") -> dict:
    """A cart of `user` holding `items` different services, with a slot unless slot=False."""
    body = {"selected_date": future_date(app), "selected_time": "10:30"} if slot else {}
    cart = client.post("/api/cart/carts/", json=body, headers=user["headers"])
    assert cart.status_code == 201, cart.json
    cart = cart.json
    for _ in range(items):
        service = make_service(app, client, price=price)
        added = client.post(f"/api/cart/carts/{cart['cart_id']}/items/", headers=user["headers"],
                            json={"service_id": service["service_id"], "quantity": quantity})
        assert added.status_code == 201, added.json
        cart = added.json
    return cart


def start_payment(client, user: dict, cart_id: str, key: str | None = None):
    headers = {**user["headers"], **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/payments/", json={"cart_id": cart_id}, headers=headers)


def make_payment(app, client, user: dict, cart_id: str | None = None) -> dict:
    cart_id = cart_id or make_cart(app, client, user)["cart_id"]
    response = start_payment(client, user, cart_id)
    assert response.status_code == 201, response.json
    return response.json


def on_razorpay(app) -> bool:
    return app.extensions["gateway"].name == "razorpay"


def signature(app, provider_order_id: str, provider_payment_id: str) -> str:
    """The gateway's signature of a capture, as its checkout hands it to the customer."""
    if on_razorpay(app):
        message = f"{provider_order_id}|{provider_payment_id}".encode()
        return hmac.new(app.config["RAZORPAY_KEY_SECRET"].encode(), message, hashlib.sha256).hexdigest()
    return app.extensions["gateway"].sign_payment(provider_order_id, provider_payment_id)


def pay_at_gateway(app, payment: dict) -> str:
    """The customer pays the payment's order at the gateway, which captures it; returns the provider payment id.

    The offline gateway holds nothing, so any new id will do; Razorpay's sandbox records the capture (its
    refunds and reconciliation need it).
    """
    if not on_razorpay(app):
        return f"pay_offline{next(_seq):06d}"
    control = urllib.request.Request(f"{app.config['RAZORPAY_BASE_URL']}/_sandbox/orders/"
                                     f"{payment['provider_order_id']}/payments", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(control, timeout=10) as answer:
        return json.load(answer)["razorpay_payment_id"]


def confirm(app, client, user: dict, payment: dict, provider_payment_id: str = "pay_test_1",
            sig: str | None = None):
    sig = sig if sig is not None else signature(app, payment["provider_order_id"], provider_payment_id)
    return client.post(f"/api/payments/{payment['transaction_id']}/confirm/", headers=user["headers"],
                       json={"provider_payment_id": provider_payment_id, "signature": sig})


def send_webhook(app, client, event: dict, sig: str | None = None):
    """POST a gateway event, given in the offline gateway's shape, signed and shaped as the app's gateway sends it."""
    if on_razorpay(app):
        made = webhook_request(as_razorpay_event(event), app.config["RAZORPAY_WEBHOOK_SECRET"],
                               event.get("event_id") if isinstance(event, dict) else None)
        headers = {**made["headers"], **({"X-Razorpay-Signature": sig} if sig is not None else {})}
        return client.post("/api/payments/webhook/", data=made["body"], headers=headers)
    raw = json.dumps(event).encode()
    sig = sig if sig is not None else app.extensions["gateway"].sign_webhook(raw)
    return client.post("/api/payments/webhook/", data=raw,
                       headers={"Content-Type": "application/json", "X-Gateway-Signature": sig})


def as_razorpay_event(event):
    """An offline-shaped payment or refund event as Razorpay's body (its id goes in a header); anything else as is.

    Its entities hold their ids and states, not all of Razorpay's fields; the refund carries no refund_id of ours
    (Razorpay's refunds made by the service do, in their notes).
    """
    name = event.get("event") if isinstance(event, dict) else None
    if name not in ("payment.captured", "payment.failed", "refund.processed", "refund.failed"):
        return event
    status = {"payment.captured": "captured", "payment.failed": "failed"}.get(name, "refunded")
    payment = {"id": event.get("provider_payment_id"), "entity": "payment", "status": status,
               "order_id": event.get("provider_order_id"), "captured": status != "failed", "notes": []}
    refund = None if name.startswith("payment.") else {
        "id": event.get("provider_refund_id"), "entity": "refund", "payment_id": event.get("provider_payment_id"),
        "notes": [], "receipt": None, "status": name.removeprefix("refund.")}
    return event_body(name, payment=payment, refund=refund)


def today(app) -> date:
    return app.config["CLOCK"]().date()
