"""Bookings, read only."""

from flask import Blueprint

from persistence import bookings
from web.auth import current_user, require_token
from web.responses import booking_json

bp = require_token(Blueprint("bookings", __name__, url_prefix="/api/bookings"))


@bp.get("/")
def list_bookings():
    """List the caller's bookings, newest first."""
    return [booking_json(v) for v in bookings.list_bookings(current_user().id)]


@bp.get("/<booking_id>/")
def get_booking(booking_id: str):
    """Show one of the caller's bookings."""
    return booking_json(bookings.get_booking(current_user().id, booking_id))
