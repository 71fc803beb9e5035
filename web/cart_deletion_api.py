"""Cart deletion with a grace period: status, delete, clean up stale payments (seed 001)."""

from datetime import datetime

from flask import Blueprint, current_app

from machines import deletion_policy as policy
from persistence import deletion
from persistence.sweep import SweepResult
from web.auth import actor, current_user, require_token
from web.clock import now
from web.errors import ApiError
from web.requests import parse
from web.schemas import Empty
from web.serializers import iso, money
from web.sweep_report import report_cart_sweep

bp = require_token(Blueprint("cart_deletion", __name__, url_prefix="/api/cart/carts"))


def _timeout() -> float:
    return current_app.config["PAYMENT_TIMEOUT_MINUTES"]


def info_json(info: policy.DeletionInfo) -> dict:
    body = {"can_delete": info.can_delete, "reason": info.reason, "message": info.message}
    if info.retry_after is not None:
        body.update(wait_time_minutes=info.wait_time_minutes, retry_after=iso(info.retry_after),
                    payment_count=info.payment_count, latest_payment_age_minutes=info.latest_payment_age_minutes)
    return body


def auto_cleanup_json(swept: SweepResult, timeout_minutes: float) -> dict | None:
    cancelled = len(swept.cancelled)
    if not cancelled:
        return None
    return {"cleaned_up": True, "payments_cancelled": cancelled,
            "message": policy.auto_cleanup_message(cancelled, timeout_minutes)}


def status_json(status: deletion.DeletionStatus) -> dict:
    return {
        "can_delete": status.info.can_delete,
        "cart_status": status.cart.status,
        "payments_count": len(status.payments),
        "payments": [{"transaction_id": a.payment.transaction_id, "status": a.payment.status,
                      "amount": money(a.payment.amount), "created_at": iso(a.payment.created_at),
                      "age_minutes": a.age_minutes, "has_booking": a.has_booking} for a in status.payments],
        "deletion_info": info_json(status.info),
    }


def _blocked(exc: deletion.DeletionBlocked, moment: datetime) -> ApiError:
    info = exc.info
    return ApiError(409, "Cannot delete cart with recent pending payments", info.message,
                    headers={"Retry-After": str(info.seconds_to_wait(moment))}, can_delete=False,
                    reason=info.reason, wait_time_minutes=info.wait_time_minutes, retry_after=iso(info.retry_after),
                    payment_count=info.payment_count, latest_payment_age_minutes=info.latest_payment_age_minutes,
                    auto_cleanup=auto_cleanup_json(exc.cleanup, _timeout()))


@bp.get("/<cart_id>/deletion_status/")
def deletion_status(cart_id: str):
    """Say whether the cart can be deleted now and, if not, how long to wait."""
    return status_json(deletion.status(current_user().id, cart_id, now=now(), timeout_minutes=_timeout()))


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
    return {"message": "Cart deleted successfully", "deleted_cart_id": cart_id,
            "auto_cleanup": auto_cleanup_json(swept, _timeout())}


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
    return {"cleanup_performed": cancelled > 0, "payments_cancelled": cancelled, "message": message,
            "can_delete_now": status.info.can_delete, "deletion_info": info_json(status.info)}
