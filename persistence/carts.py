"""Carts, their items and their slot.

Every edit is one unit of work that locks the cart row first (persistence/locks.py),
so an edit and a payment of the same cart run one after the other.
"""

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import bindparam, exists, func, select

from machines import CART_MACHINE, OPEN_PAYMENT_STATES, CartStatus
from machines.ids import new_uuid
from machines.limits import MAX_AMOUNT, MAX_QUANTITY, too_large
from persistence import locks
from persistence.db import db
from persistence.errors import Conflict, InvalidFields, NotFound
from persistence.models import LIVE_ITEMS, Cart, CartItem, Payment, Service
from persistence.uow import unit_of_work



@dataclass(frozen=True)
class ItemView:
    item_id: str
    service_id: str
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class CartView:
    cart: Cart
    items: list[ItemView]

    @property
    def total(self) -> Decimal:
        return sum((item.line_total for item in self.items), Decimal("0.00"))


# Built once: SQLAlchemy then reuses its compiled form on every call.
_ITEMS_OF_CARTS = (
    select(CartItem.cart_id, CartItem.id, CartItem.service_id, Service.name, CartItem.quantity, CartItem.unit_price)
    .join(Service, Service.id == CartItem.service_id)
    .where(CartItem.cart_id.in_(bindparam("p_cart_ids", expanding=True)), LIVE_ITEMS)
    .order_by(CartItem.created_at, CartItem.id)
)


def items_of(cart_ids: list[str]) -> dict[str, list[ItemView]]:
    """The items of several carts in one query, in the order they were added."""
    by_cart: dict[str, list[ItemView]] = {cart_id: [] for cart_id in cart_ids}
    for row in db.session.execute(_ITEMS_OF_CARTS, {"p_cart_ids": list(cart_ids)}):
        by_cart[row.cart_id].append(ItemView(row.id, row.service_id, row.name, row.quantity, row.unit_price))
    return by_cart


def view(cart: Cart) -> CartView:
    return CartView(cart, items_of([cart.id])[cart.id])


def find_cart(user_id: str, cart_id: str) -> Cart:
    """The caller's cart, or NotFound (also for another user's cart)."""
    cart = db.session.scalar(locks.owned_cart(user_id, cart_id))
    if cart is None:
        raise NotFound("cart")
    return cart


def has_open_payment(cart_id: str):
    return exists().where(Payment.cart_id == cart_id, Payment.status.in_([s.value for s in OPEN_PAYMENT_STATES]))


def lock_editable_cart(user_id: str, cart_id: str) -> Cart:
    """Lock the caller's cart for a change of items or slot, or say why it cannot change."""
    cart = locks.lock_cart(user_id, cart_id)
    if cart.status != CartStatus.ACTIVE:
        raise Conflict("cart_not_active", f"The cart is {cart.status} and can no longer be changed.")
    if db.session.scalar(select(has_open_payment(cart_id))):
        raise Conflict("cart_locked_by_payment",
                       "The cart has a payment in progress; cancel the payment first to change it.")
    return cart


def create_cart(user_id: str, selected_date: date | None, selected_time: time | None, *, now: datetime) -> CartView:
    cart = Cart(id=new_uuid(), user_id=user_id, status=CART_MACHINE.initial.value,
                selected_date=selected_date, selected_time=selected_time, created_at=now, updated_at=now)
    with unit_of_work() as uow:
        uow.session.add(cart)
        uow.commit()
    return CartView(cart, [])


def list_carts(user_id: str, status: CartStatus | None) -> list[CartView]:
    query = select(Cart).where(Cart.user_id == user_id).order_by(Cart.created_at.desc(), Cart.id)
    if status is None:
        query = query.where(Cart.status != CartStatus.DELETED.value)
    else:
        query = query.where(Cart.status == status.value)
    carts = list(db.session.scalars(query))
    items = items_of([cart.id for cart in carts]) if carts else {}
    return [CartView(cart, items[cart.id]) for cart in carts]


def get_cart(user_id: str, cart_id: str) -> CartView:
    return view(find_cart(user_id, cart_id))


def set_slot(user_id: str, cart_id: str, fields: dict, *, now: datetime) -> CartView:
    """Change the booking slot; `fields` holds `selected_date` and/or `selected_time`."""
    with unit_of_work() as uow:
        cart = lock_editable_cart(user_id, cart_id)
        for name, value in fields.items():
            setattr(cart, name, value)
        cart.updated_at = now
        uow.commit()
    return view(cart)


def add_item(user_id: str, cart_id: str, service_id: str, quantity: int, *, now: datetime) -> CartView:
    """Add a service, or add to its quantity when it is already in the cart."""
    with unit_of_work() as uow:
        cart = lock_editable_cart(user_id, cart_id)
        _, total = cart_total(cart_id)
        service = uow.session.get(Service, service_id)
        if service is None:
            raise InvalidFields({"service_id": "Unknown service."})
        item = uow.session.scalar(
            select(CartItem).where(CartItem.cart_id == cart_id, CartItem.service_id == service_id, LIVE_ITEMS))
        if item is None:
            item = CartItem(id=new_uuid(), cart_id=cart_id, service_id=service_id, quantity=0,
                            unit_price=service.price, created_at=now)
            uow.session.add(item)
        if item.quantity + quantity > MAX_QUANTITY:
            raise InvalidFields({"quantity": f"The cart would hold {item.quantity + quantity} of this service; "
                                             f"at most {MAX_QUANTITY} are allowed."})
        if too_large(item.unit_price * (item.quantity + quantity)) or too_large(total + item.unit_price * quantity):
            raise amount_too_large()
        item.quantity += quantity
        cart.updated_at = now
        uow.commit()
    return view(cart)


def remove_item(user_id: str, cart_id: str, item_id: str, *, now: datetime) -> CartView:
    with unit_of_work() as uow:
        cart = lock_editable_cart(user_id, cart_id)
        item = uow.session.scalar(
            select(CartItem).where(CartItem.id == item_id, CartItem.cart_id == cart_id, LIVE_ITEMS))
        if item is None:
            raise NotFound("item")
        item.removed_at = now  # kept as a record: rows are never hard-deleted
        cart.updated_at = now
        uow.commit()
    return view(cart)


def amount_too_large() -> Conflict:
    return Conflict("amount_too_large", f"The line or the cart total would exceed {MAX_AMOUNT}; nothing changed.")


def cart_total(cart_id: str) -> tuple[int, Decimal]:
    """Number of items and the total of one cart, computed in the database."""
    count, total = db.session.execute(
        select(func.count(CartItem.id), func.coalesce(func.sum(CartItem.unit_price * CartItem.quantity), 0))
        .where(CartItem.cart_id == cart_id, LIVE_ITEMS)
    ).one()
    return count, Decimal(total).quantize(Decimal("0.01"))

