"""A hot read-only query run on the driver's cursor, where SQLAlchemy's per-execution work costs
more than the query.

A history page (20 rows, 22 columns) took ~320 us through `Connection.execute` and ~175 us
on psycopg's cursor directly: SQLAlchemy builds an execution context and a result, fetches
row by row and runs a result processor per value, on every request. psycopg already returns
Python values (timestamps aware, JSON decoded), so on PostgreSQL the statement is compiled
once, run on the cursor (psycopg prepares it server-side after a few runs, as it does under
SQLAlchemy), and its rows come back as named tuples with
the statement's column labels. Elsewhere (SQLite, other drivers) it is SQLAlchemy's execute.

What differs from `Connection.execute`: timestamps are in the session's time zone rather
than normalised to UTC by `UTCDateTime` (callers format them with shared.timestamps.iso,
which converts), and rows are tuples rather than `Row`. Driver errors are raised as
SQLAlchemy's (`OperationalError` for a lost server, a 503), and a lost connection is
invalidated so the pool replaces it, as `execute` would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Compiled, Connection, Dialect

MAX_STATEMENTS = 256  # compiled statements kept (a history page: one per `limit` asked for)
_compiled: dict[tuple[int, str], tuple[sa.Select[Any], Compiled]] = {}


def fetch_all(connection: Connection, statement: sa.Select[Any], params: Mapping[str, Any]) -> Sequence[Any]:
    """Every row of `statement` with `params` bound; rows read by column label (`row.id`).

    Meant for statements built once (module-level or cached): each is compiled once per
    dialect and kept, so a statement built per request would be compiled every time.
    """
    if connection.dialect.driver != "psycopg":
        return connection.execute(statement, dict(params)).all()
    compiled = _compile(statement, connection.dialect)
    values = compiled.construct_params(dict(params))
    dbapi_connection = connection.connection.driver_connection
    assert dbapi_connection is not None, "a checked-out connection has its driver's connection"
    cursor = None
    try:
        from psycopg.rows import namedtuple_row

        cursor = dbapi_connection.cursor(row_factory=namedtuple_row)
        cursor.execute(compiled.string, values)
        return cursor.fetchall()
    except connection.dialect.loaded_dbapi.Error as exc:
        lost = connection.dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            compiled.string,
            values,
            exc,
            connection.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc
    finally:
        if cursor is not None:
            cursor.close()


def _compile(statement: sa.Select[Any], dialect: Dialect) -> Compiled:
    key = (id(statement), dialect.name)
    cached = _compiled.get(key)
    if cached is None or cached[0] is not statement:  # the statement is kept: its id stays its own
        if len(_compiled) >= MAX_STATEMENTS:
            _compiled.clear()
        cached = (statement, statement.compile(dialect=dialect))
        _compiled[key] = cached
    return cached[1]
