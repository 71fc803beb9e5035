"""The unit of work: one explicit database transaction per service call that writes.

    with unit_of_work() as uow:
        cart = carts.lock_cart(...)      # locks first (see README "Concurrency")
        ...                              # reads and writes that depend on the locks
        uow.commit()                     # nothing is saved without this line

Leaving the block without `commit()` (an early return, an exception) rolls
everything back. On SQLite the transaction begins IMMEDIATE, taking the
database's write lock up front, so a unit never fails to upgrade a read lock
halfway; on PostgreSQL it is an ordinary READ COMMITTED transaction whose
first statements take row locks.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy.orm import Session

from persistence.db import db

# Read by the SQLite begin hook (persistence/engine.py): a unit of work writes, so it begins IMMEDIATE.
_in_unit_of_work: ContextVar[bool] = ContextVar("in_unit_of_work", default=False)


def in_unit_of_work() -> bool:
    return _in_unit_of_work.get()


class UnitOfWork:
    def __init__(self, session: Session):
        self.session = session

    def commit(self) -> None:
        self.session.commit()


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    if _in_unit_of_work.get():
        raise RuntimeError("units of work do not nest: pass the open one down instead")
    session = db.session()
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("unsaved changes outside a unit of work")
    if session.in_transaction():
        # A read that came before (authentication): end it, so the unit's own transaction
        # begins now, IMMEDIATE on SQLite. Committing a read-only transaction changes nothing
        # and, unlike a rollback, leaves the objects already loaded usable.
        session.commit()
    marker = _in_unit_of_work.set(True)
    try:
        yield UnitOfWork(session)
    finally:
        try:
            session.rollback()  # a no-op after commit(); otherwise nothing of the unit is kept
        finally:
            _in_unit_of_work.reset(marker)
