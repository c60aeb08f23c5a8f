"""A hot read-only query run on the driver's cursor, where SQLAlchemy's per-execution work costs
more than the query.

A history page (20 rows, 22 columns) took ~320 us through `Connection.execute` and ~175 us
on psycopg's cursor directly: SQLAlchemy builds an execution context and a result, fetches
row by row and runs a result processor per value, on every request. So the statement is
compiled once and run on the driver's cursor, and its rows come back as named tuples with
the statement's column labels:

- on PostgreSQL (psycopg) always: psycopg already returns Python values (timestamps aware,
  JSON decoded), and prepares the statement server-side after a few runs, as under
  SQLAlchemy;
- on SQLite (the standard library's driver) when no parameter and no column needs
  SQLAlchemy's conversion (integers and text, say: a user's token version), so the driver's
  values are what `execute` would return;
- elsewhere, and for SQLite statements that need conversions, it is SQLAlchemy's execute.

What differs from `Connection.execute`: timestamps are in the session's time zone rather
than normalised to UTC by `UTCDateTime` (callers format them with shared.timestamps.iso,
which converts), rows are tuples rather than `Row`, and no transaction is begun for the
read (on SQLite, SQLAlchemy's BEGIN and ROLLBACK around one SELECT). Driver errors are
raised as SQLAlchemy's (`OperationalError` for a lost server, a 503), and a lost connection
is invalidated so the pool replaces it, as `execute` would.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

S = TypeVar("S")
P = TypeVar("P")
MAX_STATEMENTS = 256  # compiled statements kept (a history page: one per `limit` asked for)


def fetch_all(connection: Connection, statement: sa.Select[Any], params: Mapping[str, Any]) -> Sequence[Any]:
    """Every row of `statement` with `params` bound; rows read by column label (`row.id`).

    Meant for statements built once (module-level or cached): each is compiled once per
    dialect and kept, so a statement built per request would be compiled every time.
    """
    plan = _plans.get(statement, connection.dialect)
    if plan is None:
        return connection.execute(statement, dict(params)).all()
    compiled, row_type = plan
    values = compiled.construct_params(dict(params))
    bound: Any = values if compiled.positiontup is None else [values[name] for name in compiled.positiontup]
    dbapi_connection = connection.connection.driver_connection
    assert dbapi_connection is not None, "a checked-out connection has its driver's connection"
    cursor = None
    try:
        if row_type is None:  # psycopg makes the named tuples itself
            from psycopg.rows import namedtuple_row

            cursor = dbapi_connection.cursor(row_factory=namedtuple_row)
            cursor.execute(compiled.string, bound)
            return cursor.fetchall()  # type: ignore[no-any-return]
        cursor = dbapi_connection.cursor()
        cursor.execute(compiled.string, bound)
        return [row_type._make(row) for row in cursor.fetchall()]
    except connection.dialect.loaded_dbapi.Error as exc:
        raise driver_error(connection, exc, compiled.string, bound, cursor) from exc
    finally:
        if cursor is not None:
            cursor.close()


def driver_error(connection: Connection, exc: Any, statement: str, bound: Any, cursor: Any) -> sa.exc.StatementError:
    """The driver's error `exc` as SQLAlchemy's (OperationalError for a lost server, a 503),
    with a lost connection invalidated so the pool replaces it, as `execute` does."""
    lost = connection.dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if lost:
        connection.invalidate(exc)
    return sa.exc.DBAPIError.instance(
        statement,
        bound,
        exc,
        connection.dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=connection.dialect,
    )


_Plan = tuple[SQLCompiler, Any] | None  # (compiled, row type: None where the driver makes the rows), or execute


class PlanCache(Generic[S, P]):
    """What `make` plans for a statement on a dialect, made once per (statement, dialect) and
    kept (at most `limit`; all dropped when full). Statements are built once, so one is
    found by its identity; the statement is kept with its plan, so its id stays its own."""

    def __init__(self, make: Callable[[S, Dialect], P], limit: int) -> None:
        self.make, self.limit = make, limit
        self.plans: dict[tuple[int, str, str], tuple[S, P]] = {}

    def get(self, statement: S, dialect: Dialect) -> P:
        key = (id(statement), dialect.name, dialect.driver)
        cached = self.plans.get(key)
        if cached is None or cached[0] is not statement:
            if len(self.plans) >= self.limit:
                self.plans.clear()
            cached = (statement, self.make(statement, dialect))
            self.plans[key] = cached
        return cached[1]


def _make_plan(statement: sa.Select[Any], dialect: Dialect) -> _Plan:
    if dialect.driver not in ("psycopg", "pysqlite"):
        return None
    compiled = statement.compile(dialect=dialect)
    if dialect.driver == "psycopg":
        return compiled, None
    binds = [bind.type for bind in compiled.binds.values()]
    columns = [column.type for column in statement.selected_columns]
    if any(t.dialect_impl(dialect).bind_processor(dialect) is not None for t in binds) or any(
        t.dialect_impl(dialect).result_processor(dialect, None) is not None for t in columns
    ):
        return None
    labels = [str(column.key) for column in statement.selected_columns]
    return compiled, namedtuple("Row", labels, rename=True)  # type: ignore[misc]  # a type per statement


_plans: PlanCache[sa.Select[Any], _Plan] = PlanCache(_make_plan, MAX_STATEMENTS)
