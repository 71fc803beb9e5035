"""Failed logins counted per email and per client address, in a sliding window.

Kept in the database so the count is shared by every worker and machine.
Two concurrent guesses may both pass the check, so a limit can be exceeded by
the number of requests in flight at once; it still caps guessing at a few
attempts a window instead of thousands.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select

from persistence.db import db
from persistence.models import LoginFailure
from persistence.uow import UnitOfWork


@dataclass(frozen=True)
class Limit:
    key: str
    max_failures: int


class TooManyFailures(Exception):
    """Too many failed logins for this email or address (429)."""

    def __init__(self, retry_after_seconds: int):
        super().__init__(f"retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


def check(limits: list[Limit], *, now: datetime, window: timedelta) -> None:
    """Raise TooManyFailures if any key has used up its failures in the window."""
    since = now - window
    for limit in limits:
        count, oldest = db.session.execute(
            select(func.count(LoginFailure.id), func.min(LoginFailure.at))
            .where(LoginFailure.key == limit.key, LoginFailure.at > since)).one()
        if count >= limit.max_failures:
            # When the oldest failure leaves the window, one more attempt is allowed.
            raise TooManyFailures(max(1, math.ceil((oldest + window - now).total_seconds())))


def record_failure(uow: UnitOfWork, keys: list[str], *, now: datetime, window: timedelta) -> None:
    uow.session.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys), LoginFailure.at <= now - window))
    uow.session.execute(insert(LoginFailure), [{"key": key, "at": now} for key in keys])


def forget(uow: UnitOfWork, key: str) -> None:
    """A successful login clears its email's failures."""
    uow.session.execute(delete(LoginFailure).where(LoginFailure.key == key))
