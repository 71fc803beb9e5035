"""Refunds, for admins: every refund a page at a time, and asking again for a FAILED one."""

import re
from dataclasses import dataclass

from flask import Blueprint, request

from machines import RefundStatus
from machines.ids import is_uuid
from persistence import refund_queries, refunds
from persistence.errors import InvalidFields
from web.auth import actor, require_admin
from web.clock import now
from web.requests import parse
from web.responses import refund_json
from web.schemas import Empty

bp = require_admin(Blueprint("refunds_admin", __name__, url_prefix="/api/admin/refunds"), "see or retry refunds")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")  # ASCII digits only, and few enough for int() to be cheap


@dataclass(frozen=True)
class PageQuery:
    status: RefundStatus | None
    limit: int
    before: str | None


def page_query() -> PageQuery:
    """`?status`, `?limit` and `?before`; every bad one is named in a single 400."""
    status, limit, before = (request.args.get(name) for name in ("status", "limit", "before"))
    limit = limit if limit is not None else str(DEFAULT_PAGE_SIZE)
    bad = {}
    if status is not None and status not in RefundStatus.__members__:
        bad["status"] = f"must be one of {', '.join(RefundStatus.__members__)}"
    if not (_WHOLE_NUMBER.fullmatch(limit) and 1 <= int(limit) <= MAX_PAGE_SIZE):
        bad["limit"] = f"must be a whole number from 1 to {MAX_PAGE_SIZE}"
    if before is not None and not is_uuid(before):
        bad["before"] = "must be a refund_id (a UUID in canonical form: 36 lower-case characters with hyphens)"
    if bad:
        raise InvalidFields(bad, detail="Invalid query: " + "; ".join(f"{name} {what}" for name, what in bad.items())
                            + ".")
    return PageQuery(RefundStatus[status] if status else None, int(limit), before)


@bp.get("/")
def list_refunds():
    """List every refund, newest first, a page at a time (admins only)."""
    query = page_query()
    return [refund_json(r) for r in refund_queries.refund_page(status=query.status, limit=query.limit,
                                                               before=query.before)]


@bp.post("/<refund_id>/retry/")
def retry_refund(refund_id: str):
    """Ask again for a FAILED refund: REQUESTED, due now, with its attempts counted afresh (admins only)."""
    parse(Empty)
    return refund_json(refunds.retry(refund_id, actor=actor(), now=now()))
