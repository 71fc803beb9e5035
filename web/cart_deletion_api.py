"""Cart deletion with a grace period: status, delete, clean up stale payments (seed 001)."""

from datetime import datetime

from flask import Blueprint, current_app

from machines import deletion_policy as policy
from persistence import deletion
from web.auth import actor, current_user, require_token
from web.clock import now
from web.errors import ApiError
from web.requests import parse
from web.responses import AutoCleanup, CartDeleted, CleanupResult, DeletionBlocked, DeletionStatus
from web.schemas import Empty
from web.sweep_report import report_cart_sweep

bp = require_token(Blueprint("cart_deletion", __name__, url_prefix="/api/cart/carts"))


def _timeout() -> float:
    return current_app.config["PAYMENT_TIMEOUT_MINUTES"]


def _blocked(exc: deletion.DeletionBlocked, moment: datetime) -> ApiError:
    body = DeletionBlocked.of(exc.info, AutoCleanup.of(len(exc.cleanup.cancelled), _timeout())).body()
    return ApiError(409, body.pop("error"), body.pop("detail"),
                    headers={"Retry-After": str(exc.info.seconds_to_wait(moment))}, **body)


@bp.get("/<cart_id>/deletion_status/")
def deletion_status(cart_id: str):
    """Say whether the cart can be deleted now and, if not, how long to wait."""
    status = deletion.status(current_user().id, cart_id, now=now(), timeout_minutes=_timeout())
    return DeletionStatus.of(status).body()


@bp.delete("/<cart_id>/")
def delete_cart(cart_id: str):
    """Delete the cart, cancelling its stale payments first; refused while fresh ones remain."""
    parse(Empty)
    moment = now()
    try:
        swept = deletion.delete(current_user().id, cart_id, now=moment, timeout_minutes=_timeout(), actor=actor())
    except deletion.DeletionBlocked as exc:
        report_cart_sweep(exc.cleanup, cart_id)  # committed: the stale payments stay cancelled
        raise _blocked(exc, moment) from None
    report_cart_sweep(swept, cart_id)
    cleanup = AutoCleanup.of(len(swept.cancelled), _timeout())
    return CartDeleted(deleted_cart_id=cart_id, auto_cleanup=cleanup).body()


@bp.post("/<cart_id>/cleanup_old_payments/")
def cleanup_old_payments(cart_id: str):
    """Cancel the cart's open payments older than the timeout."""
    parse(Empty)
    swept, status = deletion.cleanup(current_user().id, cart_id, now=now(), timeout_minutes=_timeout(),
                                     actor=actor())
    report_cart_sweep(swept, cart_id)
    cancelled = len(swept.cancelled)
    message = (policy.auto_cleanup_message(cancelled, _timeout()) if cancelled
               else policy.nothing_to_clean_message(_timeout()))
    return CleanupResult(cleanup_performed=cancelled > 0, payments_cancelled=cancelled, message=message,
                         can_delete_now=status.info.can_delete, deletion_info=status.info).body()
