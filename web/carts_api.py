"""Carts: create, read, choose a slot, add and remove items, history."""

from flask import Blueprint, request

from machines import CartStatus
from persistence import carts
from persistence.errors import InvalidFields
from persistence.history import history
from web.auth import current_user, require_token
from web.clock import now
from web.requests import parse
from web.schemas import Empty, NewItem, Slot
from web.responses import cart_json, history_json

bp = require_token(Blueprint("carts", __name__, url_prefix="/api/cart/carts"))


def _slot_fields(slot: Slot) -> dict:
    """The slot fields the client sent; a date before today (service clock) is refused."""
    fields = {name: getattr(slot, name) for name in slot.model_fields_set}
    chosen = fields.get("selected_date")
    if chosen is not None and chosen < now().date():
        raise InvalidFields({"selected_date": "must not be in the past"})
    return fields


@bp.post("/")
def create_cart():
    """Create an empty cart, optionally with its slot."""
    fields = _slot_fields(parse(Slot))
    view = carts.create_cart(current_user().id, fields.get("selected_date"), fields.get("selected_time"), now=now())
    return cart_json(view), 201


@bp.get("/")
def list_carts():
    """List the caller's carts that are not deleted, or those of one status."""
    status = request.args.get("status")
    if status is not None and status not in CartStatus.__members__:
        raise InvalidFields({"status": f"must be one of {', '.join(CartStatus.__members__)}"})
    return [cart_json(v) for v in carts.list_carts(current_user().id, CartStatus[status] if status else None)]


@bp.get("/<cart_id>/")
def get_cart(cart_id: str):
    """Show one of the caller's carts."""
    return cart_json(carts.get_cart(current_user().id, cart_id))


@bp.patch("/<cart_id>/")
def set_slot(cart_id: str):
    """Choose or change the booking slot."""
    fields = _slot_fields(parse(Slot))
    if not fields:
        raise InvalidFields({"body": "send selected_date and/or selected_time"})
    return cart_json(carts.set_slot(current_user().id, cart_id, fields, now=now()))


@bp.post("/<cart_id>/items/")
def add_item(cart_id: str):
    """Add a service to the cart, or add to its quantity."""
    body = parse(NewItem)
    return cart_json(carts.add_item(current_user().id, cart_id, body.service_id, body.quantity, now=now())), 201


@bp.delete("/<cart_id>/items/<item_id>/")
def remove_item(cart_id: str, item_id: str):
    """Take an item out of the cart."""
    parse(Empty)  # like every other write: a body over 64 KiB is a 413, a non-empty one a 400
    return cart_json(carts.remove_item(current_user().id, cart_id, item_id, now=now()))


@bp.get("/<cart_id>/history/")
def cart_history(cart_id: str):
    """The cart's transitions, oldest first."""
    carts.find_cart(current_user().id, cart_id)
    return history_json(history("cart", cart_id))
