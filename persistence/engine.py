"""Engine options per database, so both behave under concurrent requests."""

from contextvars import ContextVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from persistence.sqlite_writers import WriterQueue, release_after_commit_and_rollback

SQLITE_BUSY_TIMEOUT_MS = 5000

# Set for work that only reads (GET requests): on SQLite it then begins a plain
# deferred transaction, so WAL readers never queue behind writers; on PostgreSQL
# each of its statements runs on its own, without BEGIN and ROLLBACK round trips.
_reads_only: ContextVar[bool] = ContextVar("reads_only", default=False)


# Set for work whose every write is a single statement (a confirm): on PostgreSQL its
# statements then run in autocommit too, each atomic on its own, without BEGIN and COMMIT
# round trips. Never set it for work that writes with two statements that must agree.
_single_statement_writes: ContextVar[bool] = ContextVar("single_statement_writes", default=False)


def declare_reads_only(flag: bool) -> None:
    _reads_only.set(flag)


def declare_single_statement_writes(flag: bool) -> None:
    _single_statement_writes.set(flag)


def engine_options(url: str) -> dict:
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    # No pool_pre_ping: it costs a round trip on every request. A connection killed by a
    # database restart fails its first statement instead; SQLAlchemy sees a disconnect,
    # that request is answered 503 and the whole pool is replaced.
    return {"pool_size": 5, "max_overflow": 5}


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        database = engine.url.database
        if database and database != ":memory:":
            writers = WriterQueue(f"{database}.writers")
            release_after_commit_and_rollback(engine, writers)
            event.listen(engine, "begin", lambda connection: _sqlite_begin(connection, writers))
        else:
            event.listen(engine, "begin", lambda connection: _sqlite_begin(connection, None))
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "begin", _postgresql_begin)


def _postgresql_begin(connection) -> None:
    # Decided afresh at every begin, so a pooled connection never carries the mode of its
    # last user: reads and single-statement writes run in autocommit, anything else in a
    # real transaction. The connection is idle here, so switching costs no round trip.
    connection.connection.dbapi_connection.autocommit = _reads_only.get() or _single_statement_writes.get()


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
    if _reads_only.get():
        connection.exec_driver_sql("BEGIN")
        return
    # IMMEDIATE takes the write lock up front: a read-then-write transaction can never
    # fail to upgrade its lock. Writers first queue for their turn (sqlite_writers.py);
    # busy_timeout remains the backstop.
    if writers is not None:
        writers.enter()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if writers is not None:
            writers.leave()
        raise
