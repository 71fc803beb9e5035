"""The transition writer: the only code that writes a status column.

A transition is a compare-and-set guarded by the machine's own source
states, plus a history row, in the caller's unit of work (which writes all
its history rows in one INSERT as it commits):

    UPDATE t SET status = :to, updated_at = :now
    WHERE id = :id AND status = :observed AND status IN (:sources)

`observed` is the state the caller read. Callers read the rows they move with
a row lock first (persistence/locks.py), so what they observed is what the
row holds and the history is exact; the guard is the database's own check
that nothing moves out of a state the machine does not allow. Fewer rows
updated than asked means another transaction won: `TransitionConflict`, and
the caller's unit of work rolls back. The same statements run on SQLite and
PostgreSQL.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from sqlalchemy import ColumnElement, Table, Update, bindparam, event, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from machines import CART_MACHINE, PAYMENT_MACHINE, REFUND_MACHINE, InvalidTransition
from machines.table import TransitionTable
from persistence.models import Cart, Payment, Refund, TransitionRecord

log = structlog.get_logger()


@dataclass(frozen=True)
class EntityKind:
    name: str
    table: Table
    id_column: str
    machine: TransitionTable

    @property
    def id(self):
        return self.table.c[self.id_column]


PAYMENT = EntityKind("payment", Payment.__table__, "transaction_id", PAYMENT_MACHINE)
CART = EntityKind("cart", Cart.__table__, "id", CART_MACHINE)
REFUND = EntityKind("refund", Refund.__table__, "id", REFUND_MACHINE)


@dataclass(frozen=True)
class Moved:
    """One accepted transition as written."""

    entity: str
    entity_id: str
    from_state: str
    to_state: str
    trigger: str
    actor: str
    at: datetime
    # The values of the columns a caller of `transition_all` asked back (`also_return`), in order.
    also: tuple = ()


# Told of every trigger, a batch at a time, as (moved, outcome): "accepted" after their commit,
# "refused" once a refusal is recorded and committed, "rejected" when the machine or the
# compare-and-set turns one down. The web layer registers its metrics here, so this module
# needs nothing of it.
transition_observers: list[Callable[[list[Moved], str], None]] = []


def _notify(moved: list[Moved], outcome: str) -> None:
    for observer in transition_observers:
        try:
            observer(moved, outcome)
        except Exception:  # an observer must never break a write
            log.exception("transition.observer_failed", outcome=outcome)


class TransitionConflict(Exception):
    """The row was no longer in the observed state when the write reached it."""

    def __init__(self, entity: str, entity_id: str, trigger: str):
        super().__init__(f"{entity} {entity_id}: {trigger} lost a race")
        self.entity = entity
        self.entity_id = entity_id
        self.trigger = trigger


def _value(state) -> str:
    return getattr(state, "value", state)


def transition(session: Session, kind: EntityKind, entity_id: str, trigger: str, *, observed: str, actor: str,
               now: datetime, facts: dict | None = None, values: dict | None = None,
               loaded: object | None = None) -> Moved:
    """Fire `trigger` on one row read in state `observed`; raise if the machine refuses or the row moved.

    `values` are other columns set in the same UPDATE. `loaded`, the ORM
    object of that row if the caller holds one, is brought in step with what
    was written (without marking anything to flush).
    """
    observed = _value(observed)
    try:
        to_state = kind.machine.decide(trigger, observed, **(facts or {})).value
    except InvalidTransition:
        _notify([Moved(kind.name, entity_id, observed, observed, trigger, actor, now)], "rejected")
        raise
    moved = _compare_and_set(session, kind, trigger, [(entity_id, observed)], actor=actor, now=now, values=values)
    if loaded is not None:
        for name, value in {"status": to_state, "updated_at": now, **(values or {})}.items():
            set_committed_value(loaded, name, value)
    return moved[0]


def transition_all(session: Session, kind: EntityKind, trigger: str, where: ColumnElement[bool], *, actor: str,
                   now: datetime, limit: int | None = None, skip_locked: bool = False,
                   also_return: tuple[str, ...] = ()) -> list[Moved]:
    """Fire `trigger` on every row matching `where` that is in one of its source states (at most `limit`).

    The bulk form, for the sweep and for superseding sibling payments: it
    locks the rows first (`SELECT … FOR UPDATE`; with `skip_locked`, rows
    another transaction holds are passed over — PostgreSQL only, SQLite's
    IMMEDIATE transaction already excludes every other writer), then moves
    exactly those. Each move carries the values of its row's `also_return`
    columns in `also`.
    """
    table, sources = kind.table, [s.value for s in kind.machine.sources(trigger)]
    query = (select(kind.id, table.c.status, *[table.c[name] for name in also_return])
             .where(where, table.c.status.in_(sources)).with_for_update(skip_locked=skip_locked))
    if limit is not None:
        # Skipping locked rows never waits, so take whichever rows the index yields first;
        # waiting for locks, take them in one order so two waiters cannot deadlock.
        query = (query if skip_locked else query.order_by(kind.id)).limit(limit)
    rows = session.execute(query).all()
    if not rows:
        return []
    moved = _compare_and_set(session, kind, trigger, [(row[0], row[1]) for row in rows], actor=actor, now=now)
    return [replace(m, also=tuple(row[2:])) for m, row in zip(moved, rows)]


def _compare_and_set(session: Session, kind: EntityKind, trigger: str, targets: list[tuple[str, str]], *,
                     actor: str, now: datetime, values: dict | None = None) -> list[Moved]:
    values = values or {}
    to_state = kind.machine.destination(trigger).value
    given = {f"set_{name}": value for name, value in values.items()}
    params = [{"entity_id": entity_id, "observed": observed, "now": now, **given} for entity_id, observed in targets]
    statement = _guarded_update(kind, trigger, tuple(sorted(values)))
    written = session.execute(statement, params[0] if len(params) == 1 else params).rowcount
    moved = [Moved(kind.name, entity_id, observed, to_state, trigger, actor, now) for entity_id, observed in targets]
    if written != len(targets):
        _notify(moved, "rejected")
        raise TransitionConflict(kind.name, targets[0][0] if len(targets) == 1 else "?", trigger)
    _record(session, [_history_row(m, accepted=True) for m in moved])
    session.info.setdefault("moved", []).extend(moved)
    return moved


@functools.cache
def _guarded_update(kind: EntityKind, trigger: str, value_names: tuple[str, ...]) -> Update:
    """The compare-and-set of one trigger, built once: building a statement costs more than running it.

    Run once per target (executemany for several), so the source states are fixed
    values rather than an expanding list. Bound names are not column names:
    SQLAlchemy would add a parameter named like a column to the SET clause.
    """
    table = kind.table
    return (update(table)
            .where(kind.id == bindparam("entity_id"), table.c.status == bindparam("observed"),
                   table.c.status.in_([literal(s.value) for s in kind.machine.sources(trigger)]))
            .values(status=kind.machine.destination(trigger).value, updated_at=bindparam("now"),
                    **{name: bindparam(f"set_{name}") for name in value_names}))


def _history_row(m: Moved, *, accepted: bool, detail: dict | None = None) -> dict:
    return dict(entity=m.entity, entity_id=m.entity_id, from_state=m.from_state, to_state=m.to_state,
                trigger=m.trigger, actor=m.actor, at=m.at, accepted=accepted, detail=detail)


def _record(session: Session, rows: list[dict]) -> None:
    """Queue history rows: the unit of work writes all of them, in one INSERT, as it commits."""
    session.info.setdefault("history", []).extend(rows)


def record_refusal(session: Session, kind: EntityKind, entity_id: str, trigger: str, *, from_state: str,
                   to_state: str, actor: str, now: datetime, detail: dict | None = None) -> None:
    """Record a trigger that was refused but must not be forgotten (a late capture)."""
    refused = Moved(kind.name, entity_id, from_state, to_state, trigger, actor, now)
    _record(session, [_history_row(refused, accepted=False, detail=detail)])
    session.info.setdefault("refused", []).append(refused)


_ID_FIELD = {PAYMENT.name: "transaction_id", CART.name: "cart_id", REFUND.name: "refund_id"}


def _publish(moved: list[Moved]) -> None:
    """One `<entity>.transition` log event per committed transition, then the observers."""
    for m in moved:
        log.info(f"{m.entity}.transition", **{_ID_FIELD[m.entity]: m.entity_id}, **{
            "from": m.from_state, "to": m.to_state, "trigger": m.trigger, "actor": m.actor})
    _notify(moved, "accepted")


@event.listens_for(Session, "before_commit")
def _write_history(session: Session) -> None:
    # Part of the unit's own transaction: its history rows are committed with its changes, or not at all.
    if rows := session.info.pop("history", None):
        session.execute(insert(TransitionRecord.__table__), rows)


@event.listens_for(Session, "after_commit")
def _log_committed(session: Session) -> None:
    # Logged after commit only, so a log line never speaks of a rolled-back change.
    if moved := session.info.pop("moved", None):
        _publish(moved)
    if refused := session.info.pop("refused", None):
        _notify(refused, "refused")


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("history", None)
    session.info.pop("moved", None)
    session.info.pop("refused", None)
