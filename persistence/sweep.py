"""The sweep: every stale open payment goes through `timeout`, in batches, exactly once.

One function, three callers: the scheduler, the cleanup command and the cart
deletion endpoints. Stale means `now - created_at >= timeout`, i.e.
`created_at <= now - timeout`. On PostgreSQL the writer takes the rows with
FOR UPDATE SKIP LOCKED, so concurrent sweepers pass over each other's rows and
each payment is moved (and recorded) once. The sweep locks payment rows only
and never waits for a lock, so it cannot deadlock with the cart-first order.
"""

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from persistence.db import db
from persistence.models import Payment, open_payments_only
from persistence.types import UTCDateTime
from persistence.writer import PAYMENT, published_on_the_side, transition_all

BATCH_SIZE = 500
# The global sweep sizes its batches by time, not by count: a batch holds its rows' locks until it
# commits (a confirm of one of them waits that long), so each next batch is sized to take about this
# long at the speed the last one ran: large batches on a fast, idle database, small ones under load.
HOLD_TARGET_S = 0.035
MIN_BATCH, MAX_BATCH = 50, 5000
SWEEP_ACTOR = "scheduler:stale-payment-sweep"


@dataclass(frozen=True)
class StalePayment:
    transaction_id: str
    cart_id: str
    created_at: datetime


@dataclass
class SweepResult:
    """What one sweep cancelled, newest first (as the seed's report lists them), and how long it took."""

    cancelled: list[StalePayment] = field(default_factory=list)
    batches: int = 0
    # How long each batch held its row locks: from its statement to its commit.
    batch_holds_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def longest_batch_s(self) -> float:
        return max(self.batch_holds_s, default=0.0)

    @property
    def cart_ids(self) -> list[str]:
        """The affected carts, each once, in the order of `cancelled`."""
        return list(dict.fromkeys(p.cart_id for p in self.cancelled))


def _stale(now: datetime, timeout_minutes: float, cart_id: str | None):
    where = Payment.created_at <= now - timedelta(minutes=timeout_minutes)
    return where if cart_id is None else where & (Payment.cart_id == cart_id)


def stale_open_payments(now: datetime, timeout_minutes: float, cart_id: str | None = None) -> list[StalePayment]:
    """The open payments a sweep at `now` would cancel, newest first; reads only (the dry run)."""
    rows = db.session.execute(
        select(Payment.transaction_id, Payment.cart_id, Payment.created_at)
        .where(_stale(now, timeout_minutes, cart_id), open_payments_only())  # written out: the partial index applies
        .order_by(Payment.created_at.desc(), Payment.transaction_id))
    return [StalePayment(r.transaction_id, r.cart_id, r.created_at) for r in rows]


def next_batch_size(size: int, moved: int, held_s: float) -> int:
    """The size of the next batch, after one of `size` moved `moved` rows holding their locks `held_s`."""
    if moved == 0 or held_s <= 0:
        return size
    fitting = round(HOLD_TARGET_S * moved / held_s)
    return max(MIN_BATCH, min(MAX_BATCH, (size + fitting) // 2))  # half-way there: one slow batch is not a trend


def sweep(*, now: datetime, timeout_minutes: float, cart_id: str | None = None, actor: str = SWEEP_ACTOR,
          batch_size: int | None = None, commit_batches: bool = True) -> SweepResult:
    """Fire `timeout` on every stale open payment (of one cart, if given), in batches.

    `commit_batches` commits each batch on its own; without it everything stays
    in the caller's transaction (cart deletion sweeps under its cart row lock).
    Batches committed on their own are sized by time (`next_batch_size`) unless
    `batch_size` fixes them.
    """
    result = SweepResult()
    started = time.perf_counter()
    # Bound values and a named shape: the writer builds this statement once per process.
    where = Payment.created_at <= bindparam("p_cutoff", type_=UTCDateTime())
    params = {"p_cutoff": now - timedelta(minutes=timeout_minutes)}
    if cart_id is not None:
        where = where & (Payment.cart_id == bindparam("p_cart"))
        params["p_cart"] = cart_id
    size = batch_size or BATCH_SIZE
    by_time = batch_size is None and commit_batches
    # Committing batch after batch, log each batch's lines while the next batch runs.
    with published_on_the_side(db.session) if commit_batches else nullcontext():
        while True:
            batch_started = time.perf_counter()
            # For one cart the caller holds the cart row lock (cart first, then its
            # payments), so wait for a locked payment row rather than skip it and
            # leave it open; the global sweep skips rows another sweeper holds.
            moved = transition_all(db.session, PAYMENT, "timeout", where, params=params,
                                   shape="stale" if cart_id is None else "stale of one cart", actor=actor, now=now,
                                   limit=size, skip_locked=cart_id is None,
                                   also_return=("cart_id", "created_at"))
            result.cancelled.extend(StalePayment(m.entity_id, *m.also) for m in moved)
            if commit_batches:
                db.session.commit()
                held = db.session.info.pop("committed_at") - batch_started
            else:  # the caller's transaction keeps holding them; this is how long the batch took
                held = time.perf_counter() - batch_started
            result.batches += 1
            result.batch_holds_s.append(held)
            # A short batch: nothing stale is left that another sweeper is not already holding.
            if len(moved) < size:
                break
            if by_time:
                size = next_batch_size(size, len(moved), held)
    result.cancelled.sort(key=lambda p: p.transaction_id)
    result.cancelled.sort(key=lambda p: p.created_at, reverse=True)  # stable: newest first, then by id
    result.duration_s = time.perf_counter() - started
    return result
