"""The transition writer: the only code that writes a status column.

A transition is a compare-and-set guarded by the machine's own source states,
plus a history row, in the caller's transaction:

    UPDATE t SET status = :to FROM (SELECT id, status FROM t
        WHERE id = :id AND status IN (:sources) FOR UPDATE) AS old
    WHERE t.id = old.id RETURNING old.status

The sub-select locks the row on PostgreSQL and hands back the state the row
really left (which may differ from the one the caller read), so the history
is exact. Zero rows means another request won the race: `TransitionConflict`.
On SQLite the whole transaction holds the write lock (BEGIN IMMEDIATE), so
the same statement is just as safe there.
"""

import contextvars
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import structlog

from sqlalchemy import ColumnElement, Integer, String, Table, bindparam, event, exists, insert, literal_column, select, \
    true, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from machines import CART_MACHINE, PAYMENT_MACHINE, InvalidTransition
from machines.table import TransitionTable
from persistence.direct import DirectStatement
from persistence.models import Cart, Payment, TransitionRecord
from persistence.types import UTCDateTime

log = structlog.get_logger()


@dataclass(frozen=True)
class EntityKind:
    name: str
    table: Table
    id_column: str
    machine: TransitionTable


PAYMENT = EntityKind("payment", Payment.__table__, "transaction_id", PAYMENT_MACHINE)
CART = EntityKind("cart", Cart.__table__, "id", CART_MACHINE)


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
# compare-and-set turns one down. A sweep batch of 500 is one call, not 500. The web layer
# registers its metrics here, so this module needs nothing of it.
transition_observers: list[Callable[[list[Moved], str], None]] = []


def _notify(moved: list[Moved], outcome: str) -> None:
    for observer in transition_observers:
        try:
            observer(moved, outcome)
        except Exception:  # an observer must never break a write
            log.exception("transition.observer_failed", outcome=outcome)


_NAME = re.compile(r"^[a-z_.]+$|^[A-Z_]+$")


def _constant(name: str) -> ColumnElement:
    """A state, trigger or entity name written into the SQL itself rather than bound.

    These come from the machine tables, never from a request; inlined, they cost
    nothing per execution (a bound list in IN () is re-expanded every time).
    """
    if not _NAME.match(name):
        raise ValueError(f"not a plain name: {name!r}")
    return literal_column(f"'{name}'", String())


def _in_states(column, states) -> ColumnElement[bool]:
    return column.in_([_constant(getattr(state, "value", state)) for state in states])


class TransitionConflict(Exception):
    """The row was no longer in a source state when the write reached it."""

    def __init__(self, entity: str, entity_id: str, trigger: str):
        super().__init__(f"{entity} {entity_id}: {trigger} lost a race")
        self.entity = entity
        self.entity_id = entity_id
        self.trigger = trigger


def transition(
    session: Session,
    kind: EntityKind,
    entity_id: str,
    trigger: str,
    *,
    observed: str,
    actor: str,
    now: datetime,
    facts: dict | None = None,
    values: dict | None = None,
    loaded: object | None = None,
) -> Moved:
    """Fire `trigger` on one row read in state `observed`; raise if refused or raced.

    The machine decides from the observed state (InvalidTransition); the
    database then enforces it with a compare-and-set (TransitionConflict).
    `values` are other columns to set in the same UPDATE. `loaded`, the ORM
    object of that row if the caller holds one, is brought in step with what
    was written without a re-read (and without marking anything to flush).
    """
    try:
        to_state = kind.machine.decide(trigger, observed, **(facts or {})).value
    except InvalidTransition:
        state = getattr(observed, "value", observed)
        _notify([Moved(kind.name, entity_id, state, state, trigger, actor, now)], "rejected")
        raise
    moved = _compare_and_set(session, kind, trigger, to_state, kind.table.c[kind.id_column] == bindparam("p_id"),
                             params={"p_id": entity_id}, shape="one row", actor=actor, now=now, values=values)
    if not moved:
        _notify([Moved(kind.name, entity_id, getattr(observed, "value", observed), to_state, trigger, actor, now)],
                "rejected")
        raise TransitionConflict(kind.name, entity_id, trigger)
    if loaded is not None:
        for name, value in {"status": to_state, "updated_at": now, **(values or {})}.items():
            set_committed_value(loaded, name, value)
    return moved[0]


def transition_all(
    session: Session,
    kind: EntityKind,
    trigger: str,
    where: ColumnElement[bool],
    *,
    actor: str,
    now: datetime,
    params: dict | None = None,
    shape: str | None = None,
    limit: int | None = None,
    skip_locked: bool = False,
    also_return: tuple[str, ...] = (),
) -> list[Moved]:
    """Fire `trigger` on every row matching `where` that is in one of its source states.

    The bulk form of `transition`, for the sweep and for superseding sibling
    payments. `skip_locked` lets concurrent sweepers pass over each other's rows.
    A caller on a hot path names its `where` a `shape` and takes every value in
    it from a bindparam given in `params`: the statement is then built once.
    Name those bindparams `p_...`: Core adds an UPDATE's execution parameters
    that are named like a column to its SET clause. `also_return` names other
    columns of the moved rows to hand back in each `Moved.also`, read as the
    rows were locked, in the same round trip.
    """
    to_state = kind.machine.destination(trigger).value
    return _compare_and_set(session, kind, trigger, to_state, where, params=params, shape=shape, actor=actor,
                            now=now, limit=limit, skip_locked=skip_locked, also_return=also_return)


@dataclass(frozen=True)
class Step:
    """One transition of `transition_together`.

    `where` picks the rows, with every value a `p_...` bindparam given in
    `params`. A required step must move at least one row (it is checked
    against the machine with `observed` and `facts` first); an optional one
    moves whatever matching rows are in a source state, possibly none.
    `values` names other columns set from `params["p_set_<name>"]`.
    """

    kind: EntityKind
    trigger: str
    where: ColumnElement[bool]
    required: bool = True
    observed: str | None = None
    facts: dict | None = None
    values: tuple[str, ...] = ()


def transition_together(
    session: Session,
    steps: list[Step],
    *,
    params: dict,
    shape: str,
    actor: str,
    now: datetime,
    also_insert: Table | None = None,
) -> list[Moved]:
    """Fire several transitions that all happen or none do, then insert one row into `also_insert`.

    On PostgreSQL this is one statement: it locks each step's rows in order,
    and only when every required step found its row in a source state does it
    update them all, insert the other row (its columns from
    `params["p_also_<column>"]`) and write every history row. Otherwise it
    changes nothing and raises TransitionConflict; the caller rolls back.
    On SQLite the steps run one after the other inside the caller's
    immediate transaction, with the same outcome.
    """
    for step in steps:
        if step.required:
            try:
                step.kind.machine.decide(step.trigger, step.observed, **(step.facts or {}))
            except InvalidTransition:
                state = getattr(step.observed, "value", step.observed)
                _notify([Moved(step.kind.name, "?", state, state, step.trigger, actor, now)], "rejected")
                raise
    dialect = session.get_bind().dialect.name
    key = ("together", shape, dialect)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = (DirectStatement(_build_together(steps, also_insert)) if dialect != "sqlite"
                                        else _build_together_sqlite(steps, also_insert))
    bound = {**params, "p_now": now, "p_actor": actor}
    if dialect == "sqlite":
        return _together_sqlite(session, steps, statement, bound, actor=actor, now=now)
    # One statement, run straight on the driver (persistence/direct.py): this is the confirm's write.
    rows = statement.rows(session.connection(), bound)
    to_states = {(s.kind.name, s.trigger): s.kind.machine.destination(s.trigger).value for s in steps}
    moved = [Moved(entity, entity_id, from_state, to_states[(entity, trigger)], trigger, actor, now)
             for entity, entity_id, from_state, trigger in rows]
    if not moved:
        first = next(s for s in steps if s.required)
        _notify([Moved(first.kind.name, "?", str(getattr(first.observed, "value", first.observed)),
                       first.kind.machine.destination(first.trigger).value, first.trigger, actor, now)], "rejected")
        raise TransitionConflict(first.kind.name, "?", first.trigger)
    session.info.setdefault("moved", []).extend(moved)
    return moved


def _build_together(steps: list[Step], also_insert: Table | None):
    # WITH locked_0 AS MATERIALIZED (SELECT id, status ... FOR UPDATE), locked_1 ..., -- in step order
    #      ready AS (SELECT 1 FROM locked_<each required>),           -- empty unless all are there
    #      moved_i AS (UPDATE ... FROM locked_i WHERE ... AND EXISTS (SELECT 1 FROM ready) RETURNING ...),
    #      also AS (INSERT INTO <also_insert> SELECT :p_also_... WHERE EXISTS (SELECT 1 FROM ready))
    # INSERT INTO transitions SELECT ... FROM moved_0 UNION ALL ... RETURNING ...
    locks, moves = [], []
    for i, step in enumerate(steps):
        table = step.kind.table
        id_col = table.c[step.kind.id_column]
        sources = [state.value for state in step.kind.machine.sources(step.trigger)]
        locked = (select(id_col.label("entity_id"), table.c.status.label("from_state"))
                  .where(step.where, _in_states(table.c.status, sources)).order_by(id_col).with_for_update()
                  .cte(f"locked_{i}").prefix_with("MATERIALIZED"))
        locks.append(locked)
    required = [lock for lock, step in zip(locks, steps) if step.required]
    all_of_them = required[0]
    for lock in required[1:]:
        all_of_them = all_of_them.join(lock, true())
    ready = select(literal_column("1").label("ok")).select_from(all_of_them).cte("ready")
    is_ready = exists(select(ready.c.ok))
    for i, (step, locked) in enumerate(zip(steps, locks)):
        table = step.kind.table
        assignments = {"status": _constant(step.kind.machine.destination(step.trigger).value),
                       "updated_at": bindparam("p_now", type_=UTCDateTime()),
                       **{name: bindparam(f"p_set_{name}", type_=table.c[name].type) for name in step.values}}
        moves.append(update(table).where(table.c[step.kind.id_column] == locked.c.entity_id, is_ready)
                     .values(**assignments).returning(locked.c.entity_id, locked.c.from_state).cte(f"moved_{i}"))
    ctes = [*locks, ready, *moves]
    if also_insert is not None:
        columns = [c.name for c in also_insert.columns]
        row = select(*[bindparam(f"p_also_{name}", type_=also_insert.c[name].type) for name in columns])
        ctes.append(insert(also_insert).from_select(columns, row.where(is_ready))
                    .returning(also_insert.primary_key.columns[0]).cte("also"))
    history = TransitionRecord.__table__
    rows = union_all(*[
        select(_constant(step.kind.name).label("entity"), moved.c.entity_id, moved.c.from_state,
               _constant(step.kind.machine.destination(step.trigger).value), _constant(step.trigger),
               bindparam("p_actor", type_=String()),
               bindparam("p_now", type_=UTCDateTime()), true())
        for step, moved in zip(steps, moves)])
    return (insert(history)
            .from_select(["entity", "entity_id", "from_state", "to_state", "trigger", "actor", "at", "accepted"], rows)
            .returning(history.c.entity, history.c.entity_id, history.c.from_state, history.c.trigger)
            .add_cte(*ctes))


def _build_together_sqlite(steps: list[Step], also_insert: Table | None):
    if also_insert is None:
        return None
    return insert(also_insert).values(**{c.name: bindparam(f"p_also_{c.name}") for c in also_insert.columns})


def _together_sqlite(session, steps, also, bound, *, actor, now) -> list[Moved]:
    moved = []
    for i, step in enumerate(steps):
        to_state = step.kind.machine.destination(step.trigger).value
        values = {name: bound[f"p_set_{name}"] for name in step.values}
        step_moved = _compare_and_set(session, step.kind, step.trigger, to_state, step.where, params=bound,
                                      shape=f"together {i} {step.trigger}", actor=actor, now=now, values=values)
        if step.required and not step_moved:
            _notify([Moved(step.kind.name, "?", str(getattr(step.observed, "value", step.observed)), to_state,
                           step.trigger, actor, now)], "rejected")
            raise TransitionConflict(step.kind.name, "?", step.trigger)
        moved += step_moved
    if also is not None:
        session.execute(also, bound)
    return moved


def record_refusal(
    session: Session,
    kind: EntityKind,
    entity_id: str,
    trigger: str,
    *,
    from_state: str,
    to_state: str,
    actor: str,
    now: datetime,
    detail: dict | None = None,
) -> None:
    """Record a trigger that was refused but must not be forgotten (a late capture)."""
    session.execute(
        insert(TransitionRecord).values(
            entity=kind.name, entity_id=entity_id, from_state=from_state, to_state=to_state,
            trigger=trigger, actor=actor, at=now, accepted=False, detail=detail,
        )
    )
    session.info.setdefault("refused", []).append(
        Moved(kind.name, entity_id, from_state, to_state, trigger, actor, now))


# Built statements by (entity, trigger, shape, columns set, limited or not, skip_locked, dialect).
# Building one costs ~80 µs and SQLAlchemy memoizes a statement's cache key,
# so reusing the object takes that off every transition.
_STATEMENTS: dict[tuple, tuple] = {}


def _compare_and_set(session, kind, trigger, to_state, where, *, actor, now, params=None, shape=None,
                     values=None, limit=None, skip_locked=False, also_return=()) -> list[Moved]:
    values = values or {}
    dialect = session.get_bind().dialect.name
    key = (kind.name, trigger, shape, tuple(sorted(values)), limit is not None, skip_locked, also_return, dialect)
    statements = _STATEMENTS.get(key) if shape is not None else None
    if statements is None:
        statements = _build(kind, trigger, to_state, where, sorted(values), limit is not None, skip_locked,
                            also_return, dialect)
        if shape is not None:
            if dialect != "sqlite":  # built once, so worth compiling once and running on the driver
                statements = (DirectStatement(statements[0]),)
            _STATEMENTS[key] = statements
    bound = {**(params or {}), "p_now": now, "p_actor": actor, **{f"p_set_{name}": v for name, v in values.items()}}
    if limit is not None:
        bound["p_limit"] = limit
    if dialect == "sqlite":
        candidates, guarded_update = statements
        # SQLite's RETURNING cannot name a sub-select's columns. Its transaction
        # already holds the database write lock (BEGIN IMMEDIATE), so nothing can
        # move between this read and the guarded write.
        rows = session.execute(candidates, bound).all()
        if rows:
            session.execute(guarded_update, {**bound, "p_ids": [r.entity_id for r in rows]})
            session.execute(insert(TransitionRecord), [
                dict(entity=kind.name, entity_id=r.entity_id, from_state=r.from_state, to_state=to_state,
                     trigger=trigger, actor=actor, at=now, accepted=True, detail=None) for r in rows])
    elif isinstance(statements[0], DirectStatement):
        rows = statements[0].rows(session.connection(), bound)
    else:
        rows = session.execute(statements[0], bound).all()
    moved = [Moved(kind.name, row[0], row[1], to_state, trigger, actor, now, tuple(row[2:])) for row in rows]
    session.info.setdefault("moved", []).extend(moved)
    return moved


def _build(kind, trigger, to_state, where, value_names, limited, skip_locked, also_return, dialect) -> tuple:
    table = kind.table
    id_col = table.c[kind.id_column]
    sources = [state.value for state in kind.machine.sources(trigger)]
    candidates = select(id_col.label("entity_id"), table.c.status.label("from_state"),
                        *[table.c[name] for name in also_return]).where(where, _in_states(table.c.status, sources))
    if limited:
        # Waiting for locks, take them in one order. Skipping locked rows never waits, so it
        # takes whichever rows the (status, created_at) index yields first: ordering by id
        # would walk past every row already cancelled, batch after batch.
        # A bound LIMIT: one statement serves every batch size (the sweep sizes its batches by time).
        candidates = (candidates if skip_locked else candidates.order_by(id_col)).limit(
            bindparam("p_limit", type_=Integer()))
    assignments = {"status": _constant(to_state), "updated_at": bindparam("p_now", type_=UTCDateTime()),
                   **{name: bindparam(f"p_set_{name}", type_=table.c[name].type) for name in value_names}}
    if dialect == "sqlite":
        guarded_update = (update(table).where(id_col.in_(bindparam("p_ids", expanding=True)),
                                              _in_states(table.c.status, sources)).values(**assignments))
        return candidates, guarded_update
    # One round trip on PostgreSQL: the compare-and-set and its history rows.
    #   WITH moved AS (UPDATE t SET ... FROM (SELECT id, status ... FOR UPDATE) old
    #                  WHERE t.id = old.id RETURNING old.id, old.status, <also_return>),
    #        recorded AS (INSERT INTO transitions SELECT ... FROM moved RETURNING id)
    #   SELECT * FROM moved
    # The sub-select locks the rows and hands back the state each really left.
    old = candidates.with_for_update(skip_locked=skip_locked).subquery("old")
    moved = (update(table).where(id_col == old.c.entity_id).values(**assignments)
             .returning(old.c.entity_id, old.c.from_state, *[old.c[name] for name in also_return]).cte("moved"))
    history = TransitionRecord.__table__
    recorded = (
        insert(history)
        .from_select(
            ["entity", "entity_id", "from_state", "to_state", "trigger", "actor", "at", "accepted"],
            select(_constant(kind.name), moved.c.entity_id, moved.c.from_state, _constant(to_state), _constant(trigger),
                   bindparam("p_actor", type_=String()), bindparam("p_now", type_=UTCDateTime()), true()),
        )
        .returning(history.c.id)
        .cte("recorded")
    )
    return (select(moved).add_cte(recorded),)


_ID_FIELD = {PAYMENT.name: "transaction_id", CART.name: "cart_id"}


def _publish(moved: list[Moved]) -> None:
    """One `<entity>.transition` log event per committed transition, then the observers."""
    for m in moved:
        log.info(f"{m.entity}.transition", **{_ID_FIELD[m.entity]: m.entity_id}, **{
            "from": m.from_state, "to": m.to_state, "trigger": m.trigger, "actor": m.actor})
    _notify(moved, "accepted")


_YIELD_EVERY = 20


def _publish_yielding(moved: list[Moved]) -> None:
    # Let go of the GIL every few lines: the writer's thread, back from the database with a batch
    # whose row locks it holds until commit, must not wait a 5 ms switch interval for the log.
    for start in range(0, len(moved), _YIELD_EVERY):
        _publish(moved[start:start + _YIELD_EVERY])
        time.sleep(0)


@contextmanager
def published_on_the_side(session: Session):
    """While inside, `session`'s committed transitions are logged by a helper thread, in order.

    For bulk writers (the sweep): the next batch's statement then runs while
    the last batch's 500 lines are written, instead of after them. Leaving
    waits until every line is out, so whatever the caller logs next comes last.
    """
    context = contextvars.copy_context()  # the caller's log context (job, run_id) goes along
    pending = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="transition-log") as helper:
        session.info["publish"] = lambda moved: pending.append(helper.submit(context.run, _publish_yielding, moved))
        try:
            yield
        finally:
            session.info.pop("publish", None)
    for done in pending:
        done.result()  # a failure to log surfaces here rather than vanishing with the thread


@event.listens_for(Session, "after_commit")
def _log_committed(session: Session) -> None:
    # When the database let go of this transaction's locks, before any logging: the sweep
    # reports how long each batch held its locks from this.
    session.info["committed_at"] = time.perf_counter()
    # Logged after commit only, so a log line never speaks of a rolled-back change.
    if moved := session.info.pop("moved", None):
        session.info.get("publish", _publish)(moved)
    if refused := session.info.pop("refused", None):
        _notify(refused, "refused")


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("moved", None)
    session.info.pop("refused", None)
