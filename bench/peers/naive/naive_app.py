"""The confirm as a team would first write it with Flask-SQLAlchemy's ORM: correct, and unoptimised.

It loads the payment and its cart (locking both, so two confirms of one cart cannot both book),
verifies the gateway's signature, updates both, adds the booking and two history rows, commits,
and answers from the objects, which the commit expired and the ORM loads again. Models of its own
map the service's tables, so the bench's seeding and request files serve it unchanged.
"""

import hashlib
import hmac
import os
import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal

from flask import Flask, abort, current_app, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(db.Model):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str]


class ApiToken(db.Model):
    __tablename__ = "api_tokens"
    token_hash: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    user: Mapped[User] = relationship()


class Service(db.Model):
    __tablename__ = "services"
    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]


class CartItem(db.Model):
    __tablename__ = "cart_items"
    id: Mapped[str] = mapped_column(primary_key=True)
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    removed_at: Mapped[datetime | None]
    service: Mapped[Service] = relationship()

    def to_dict(self):
        return {"item_id": self.id, "service_id": self.service_id, "name": self.service.name,
                "quantity": self.quantity, "unit_price": str(self.unit_price),
                "line_total": str(self.unit_price * self.quantity)}


class Cart(db.Model):
    __tablename__ = "carts"
    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str]
    selected_date: Mapped[date | None]
    selected_time: Mapped[time | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    items: Mapped[list[CartItem]] = relationship()

    def to_dict(self):
        items = [item for item in self.items if item.removed_at is None]
        return {"cart_id": self.id, "status": self.status, "items": [item.to_dict() for item in items],
                "total": str(sum((item.unit_price * item.quantity for item in items), Decimal("0.00"))),
                "selected_date": self.selected_date and self.selected_date.isoformat(),
                "selected_time": self.selected_time and self.selected_time.strftime("%H:%M"),
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


class Payment(db.Model):
    __tablename__ = "payments"
    transaction_id: Mapped[str] = mapped_column(primary_key=True)
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str]
    amount: Mapped[Decimal]
    currency: Mapped[str]
    provider_order_id: Mapped[str | None]
    provider_payment_id: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def to_dict(self):
        return {"transaction_id": self.transaction_id, "cart_id": self.cart_id, "status": self.status,
                "amount": str(self.amount), "currency": self.currency, "provider_order_id": self.provider_order_id,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


class Booking(db.Model):
    __tablename__ = "bookings"
    id: Mapped[str] = mapped_column(primary_key=True)
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"))
    transaction_id: Mapped[str] = mapped_column(ForeignKey("payments.transaction_id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str]
    selected_date: Mapped[date]
    selected_time: Mapped[time]
    total: Mapped[Decimal]
    created_at: Mapped[datetime]

    def to_dict(self):
        return {"booking_id": self.id, "cart_id": self.cart_id, "transaction_id": self.transaction_id,
                "status": self.status, "selected_date": self.selected_date.isoformat(),
                "selected_time": self.selected_time.strftime("%H:%M"), "total": str(self.total),
                "created_at": self.created_at.isoformat()}


class Transition(db.Model):
    __tablename__ = "transitions"
    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str]
    entity_id: Mapped[str]
    from_state: Mapped[str]
    to_state: Mapped[str]
    trigger: Mapped[str]
    actor: Mapped[str]
    at: Mapped[datetime]
    accepted: Mapped[bool]
    detail: Mapped[dict | None] = mapped_column(JSON)


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    app.config["GATEWAY_SECRET"] = os.environ["GATEWAY_SECRET"]
    db.init_app(app)
    app.get("/bench/baseline")(lambda: {"status": "ok"})
    app.post("/api/payments/<transaction_id>/confirm/")(confirm)
    for code in (400, 401, 404, 409):
        app.register_error_handler(code, lambda e: (jsonify(error=e.name, detail=e.description), e.code))
    return app


def current_user():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    api_token = db.session.get(ApiToken, hashlib.sha256(token.encode()).hexdigest()) if scheme == "Bearer" else None
    if api_token is None:
        abort(401, "Send a valid bearer token.")
    return api_token.user


def signature_is_valid(order_id, payment_id, signature):
    expected = hmac.new(current_app.config["GATEWAY_SECRET"].encode(), f"{order_id}|{payment_id}".encode(),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def confirm(transaction_id):
    """Verify the gateway's signature and turn the payment into a booking."""
    user = current_user()
    body = request.get_json()
    if not isinstance(body, dict) or not isinstance(body.get("provider_payment_id"), str) \
            or not isinstance(body.get("signature"), str):
        abort(400, "Send provider_payment_id and signature.")
    payment = Payment.query.filter_by(transaction_id=transaction_id, user_id=user.id).with_for_update().first_or_404()
    cart = Cart.query.filter_by(id=payment.cart_id).with_for_update().one()
    if payment.status != "PENDING" or cart.status != "ACTIVE":
        abort(409, f"The payment is {payment.status} and its cart {cart.status}.")
    if not payment.provider_order_id or not signature_is_valid(payment.provider_order_id,
                                                               body["provider_payment_id"], body["signature"]):
        abort(400, "The signature does not match.")
    now = datetime.now(timezone.utc)
    actor = f"user:{user.id}"
    payment.status, payment.provider_payment_id, payment.updated_at = "SUCCESS", body["provider_payment_id"], now
    cart.status, cart.updated_at = "CONVERTED", now
    booking = Booking(id=str(uuid.uuid4()), cart_id=cart.id, transaction_id=payment.transaction_id, user_id=user.id,
                      status="CONFIRMED", selected_date=cart.selected_date, selected_time=cart.selected_time,
                      total=payment.amount, created_at=now)
    db.session.add(booking)
    db.session.add(Transition(entity="payment", entity_id=payment.transaction_id, from_state="PENDING",
                              to_state="SUCCESS", trigger="succeed", actor=actor, at=now, accepted=True))
    db.session.add(Transition(entity="cart", entity_id=cart.id, from_state="ACTIVE", to_state="CONVERTED",
                              trigger="convert", actor=actor, at=now, accepted=True))
    db.session.commit()
    return jsonify(payment=payment.to_dict(), booking=booking.to_dict(), cart=cart.to_dict())
