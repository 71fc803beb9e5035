"""Engine options per database, so both behave under concurrent requests; how reads and writes begin."""

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session

from persistence.db import db
from persistence.sqlite_writers import WriterQueue, release_after_commit_and_rollback
from persistence.uow import in_unit_of_work

SQLITE_BUSY_TIMEOUT_MS = 5000
AUTOCOMMIT = "AUTOCOMMIT"


def engine_options(url: str) -> dict:
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    # No pool_pre_ping: it costs a round trip on every request. A connection killed by a
    # database restart fails its first statement instead; SQLAlchemy sees a disconnect,
    # that request is answered 503 and the whole pool is replaced.
    return {"pool_size": 5, "max_overflow": 5}


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_connect)
    database = engine.url.database
    writers = WriterQueue(f"{database}.writers") if database and database != ":memory:" else None
    if writers is not None:
        release_after_commit_and_rollback(engine, writers)
    event.listen(engine, "begin", lambda connection: _sqlite_begin(connection, writers))


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection, writers: WriterQueue | None) -> None:
    if not in_unit_of_work():
        # Reads: a deferred transaction, so WAL readers never queue behind writers.
        connection.exec_driver_sql("BEGIN")
        return
    # A unit of work begins IMMEDIATE, taking the write lock up front: a read-then-write
    # transaction can never fail to upgrade its lock. Writers first queue for their turn
    # (sqlite_writers.py); busy_timeout remains the backstop.
    if writers is not None:
        writers.enter()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if writers is not None:
            writers.leave()
        raise


def read_without_transaction(state: ORMExecuteState) -> None:
    """PostgreSQL: reads outside a unit of work run in autocommit, statement by statement.

    Under READ COMMITTED every statement takes its own snapshot, in a transaction or not, so a
    transaction around reads guarantees nothing more; it costs a BEGIN and a ROLLBACK per request,
    and the ROLLBACK makes psycopg drop its prepared statements (DEALLOCATE ALL). Units of work
    keep their one transaction. A session whose first statement outside a unit of work writes
    (tests do) keeps an ordinary transaction too; a write after autocommit reads is refused, since
    it would be saved at once, outside any unit of work. SQLite keeps its deferred read transaction
    (its begin hook above), which WAL needs for a snapshot.
    """
    if in_unit_of_work():
        return
    session = state.session
    writes = state.is_insert or state.is_update or state.is_delete
    if session.get_transaction() is None:
        if not writes and session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": AUTOCOMMIT})
    elif writes:
        _refuse_autocommit_writes(session)


def _refuse_autocommit_writes(session: Session, *_args) -> None:
    if (not in_unit_of_work() and session.get_transaction() is not None
            and session.connection().get_execution_options().get("isolation_level") == AUTOCOMMIT):
        raise RuntimeError("a write outside a unit of work would be saved at once: open one (persistence/uow.py)")


event.listen(db.session, "do_orm_execute", read_without_transaction)
event.listen(db.session, "before_flush", _refuse_autocommit_writes)
