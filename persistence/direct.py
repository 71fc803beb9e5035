"""Prebuilt statements run on the database driver's own cursor: the hot paths' way past SQLAlchemy's per-call work.

A direct statement is still built with SQLAlchemy, from the same tables and
the same machine-derived conditions as every other statement, and compiled
once per process. Each execution then costs what psycopg costs (about 50 µs
of CPU here) instead of the 300-800 µs `Session.execute` spends on caching,
events, result set-up and ORM loading. Only the confirm's statements (a few
per request, thousands of requests a second) are worth it; everything else
uses the session as usual.

It runs on the connection of the caller's session (`db.session.connection()`),
so it takes part in the same transaction and the same begin/commit events:
nothing about transactions, autocommit or pooling changes. On databases other
than PostgreSQL it simply executes through SQLAlchemy.
"""

from collections.abc import Mapping

from sqlalchemy import Connection
from sqlalchemy.sql import Executable

_DIRECT_DIALECTS = {"postgresql"}


class _Compiled:
    """One statement compiled for one dialect, with its bind and result conversions."""

    def __init__(self, statement: Executable, dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # Values written into the statement itself (a constant in .values(), a LIMIT): sent with every call.
        self.constants = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self.column_types = [column.type.dialect_impl(dialect) for column in statement.exported_columns]
        self.dialect = dialect
        self.converters: list | None = None  # known after the first result: they depend on the column type codes

    def convert(self, cursor, rows: list[tuple]) -> list[tuple]:
        if self.converters is None:
            # cursor.description builds a Column object per column on every access: read it once.
            self.converters = [
                (i, processor) for i, (kind, column) in enumerate(zip(self.column_types, cursor.description))
                if (processor := kind.result_processor(self.dialect, column.type_code)) is not None
            ]
        if not self.converters:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for i, processor in self.converters:
                values[i] = processor(values[i])
            converted.append(tuple(values))
        return converted


def _cursor_of(connection: Connection):
    """One psycopg cursor per database connection, kept with it: making one per call costs ~30 µs.

    `connection.info` lives exactly as long as the driver's connection (SQLAlchemy clears it when
    a broken connection is replaced), so a kept cursor never outlives the connection it belongs to.
    """
    cursor = connection.info.get(_CURSOR)
    if cursor is None or cursor.closed:
        cursor = connection.info[_CURSOR] = connection.connection.driver_connection.cursor()
    return cursor


_CURSOR = "persistence.direct.cursor"


class DirectStatement:
    """A Core statement that returns rows (SELECT, or DML with RETURNING), executed straight on the driver's cursor."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, connection: Connection, params: Mapping) -> list[tuple]:
        """Execute with `params` (named as the statement's bindparams) on `connection`; all rows, converted."""
        dialect = connection.dialect
        if dialect.name not in _DIRECT_DIALECTS:
            return [tuple(row) for row in connection.execute(self.statement, dict(params))]
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        params = {**compiled.constants, **params} if compiled.constants else params
        if compiled.binds:
            params = {name: compiled.binds[name](value) if name in compiled.binds else value
                      for name, value in params.items()}
        try:
            cursor = _cursor_of(connection)
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
            return compiled.convert(cursor, rows) if rows else rows
        except connection.dialect.loaded_dbapi.Error as exc:
            # Exactly what SQLAlchemy does when its own execution fails: its exception types
            # (IntegrityError, OperationalError, ...), and a lost connection invalidates the pool,
            # so a restarted database costs one 503 rather than one per pooled connection.
            connection._handle_dbapi_exception(exc, compiled.sql, params, None, None)
            raise  # not reached: the handler always raises
