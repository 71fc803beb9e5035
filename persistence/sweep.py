"""The sweep: every stale open payment goes through `timeout`, in batches, exactly once.

One function, called by the scheduler and the cleanup command (the cart
deletion endpoints time out one cart's payments under its lock, in
persistence/deletion.py). Stale is machines/deletion_policy.py's rule. On
PostgreSQL the writer takes the rows with FOR UPDATE SKIP LOCKED, so
concurrent sweepers pass over each other's rows and each payment is moved
(and recorded) once. The sweep locks payment rows only and never waits for a
lock, so it cannot deadlock with the cart-first order. It yields to live
traffic by resting between batches, for a time measured from each batch.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from machines.deletion_policy import stale_cutoff
from persistence.db import db
from persistence.models import Payment, open_payments_only
from persistence.uow import unit_of_work
from persistence.writer import PAYMENT, transition_all

BATCH_SIZE = 500
# The global sweep sizes its batches by time, not by count: a batch holds its rows' locks until it
# commits (a confirm of one of them waits that long), so each next batch is sized to take about this
# long at the speed the last one ran: large batches on a fast, idle database, small ones under load.
HOLD_TARGET_S = 0.035
MIN_BATCH, MAX_BATCH = 50, 5000
# The share of wall time the sweep may spend in its batches: after each one it rests in proportion to
# how long that one took (`rest_after`), so live confirms get the database and the CPU in between,
# however fast or slow the batches run. Half: a paced sweep takes twice as long as one at full speed,
# and a lower share would stretch it further past the 5 minutes a million stale payments may take
# (bench.sweep --share; README, "The sweep", has what was measured and what was not met).
BUSY_SHARE = 0.5
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


def stale_open_payments(now: datetime, timeout_minutes: float) -> list[StalePayment]:
    """The open payments a sweep at `now` would cancel, newest first; reads only (the dry run)."""
    rows = db.session.execute(
        select(Payment.transaction_id, Payment.cart_id, Payment.created_at)
        .where(Payment.created_at <= stale_cutoff(now, timeout_minutes), open_payments_only())
        .order_by(Payment.created_at.desc(), Payment.transaction_id))
    return [StalePayment(r.transaction_id, r.cart_id, r.created_at) for r in rows]


def next_batch_size(size: int, moved: int, held_s: float) -> int:
    """The size of the next batch, after one of `size` moved `moved` rows holding their locks `held_s`."""
    if moved == 0 or held_s <= 0:
        return size
    fitting = round(HOLD_TARGET_S * moved / held_s)
    return max(MIN_BATCH, min(MAX_BATCH, (size + fitting) // 2))  # half-way there: one slow batch is not a trend


def rest_after(busy_s: float, share: float = BUSY_SHARE) -> float:
    """How long to rest after a batch that took `busy_s`, so that batches fill at most `share` of the time."""
    return busy_s * (1 - share) / share


def sweep(*, now: datetime, timeout_minutes: float, actor: str = SWEEP_ACTOR, batch_size: int | None = None,
          share: float = BUSY_SHARE, sleep: Callable[[float], None] = time.sleep,
          monotonic: Callable[[], float] = time.perf_counter) -> SweepResult:
    """Fire `timeout` on every stale open payment, one unit of work per batch, resting between batches.

    Batches are sized by time (`next_batch_size`) unless `batch_size` fixes them; after each but the
    last the sweep rests `rest_after` its hold, so it works at most `share` of the time (1: no rest).
    """
    result = SweepResult()
    started = monotonic()
    stale = Payment.created_at <= stale_cutoff(now, timeout_minutes)
    size = batch_size or BATCH_SIZE
    while True:
        batch_started = monotonic()
        with unit_of_work() as uow:
            moved = transition_all(uow.session, PAYMENT, "timeout", stale, actor=actor, now=now, limit=size,
                                   skip_locked=True, also_return=("cart_id", "created_at"))
            uow.commit()
        held = monotonic() - batch_started
        result.cancelled.extend(StalePayment(m.entity_id, *m.also) for m in moved)
        result.batches += 1
        result.batch_holds_s.append(held)
        # A short batch: nothing stale is left that another sweeper is not already holding.
        if len(moved) < size:
            break
        if batch_size is None:
            size = next_batch_size(size, len(moved), held)
        sleep(rest_after(held, share))
    result.cancelled.sort(key=lambda p: p.transaction_id)
    result.cancelled.sort(key=lambda p: p.created_at, reverse=True)  # stable: newest first, then by id
    result.duration_s = monotonic() - started
    return result
