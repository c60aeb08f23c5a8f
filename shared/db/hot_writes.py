"""A hot INSERT or UPDATE run on the driver's cursor, in the caller's transaction.

Every job crosses the same few writes on its way (weave marks it running; notify finishes
it and queues its completion in the outbox), and SQLAlchemy's per-execution work costs
more than the statements: on this project's 2-core machine notify's transaction (three
statements) took ~1.15 ms through the session against ~0.48 ms with its statements run on
the driver's cursor, inside the same session transaction.

So a statement is compiled once per dialect and run on the driver's cursor, with what
SQLAlchemy would do around it done here from the same definitions:

- every parameter goes through its column type's bind processor (`UTCDateTime` stores
  UTC, JSON is serialised), so the stored values are exactly those `execute` stores;
- RETURNING rows go through the columns' result processors and come back as named tuples
  read by column name (`row.status`).

A statement that needs more of SQLAlchemy runs through `Connection.execute` instead: one
with a Python-side column default or onupdate to compute (`updated_at`: hot statements
bind it themselves), or an expanding `IN` parameter, or another driver than the standard
library's sqlite3 or psycopg. Driver errors are raised as SQLAlchemy's, as in
shared.db.hot_reads.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

from shared.db.hot_reads import PlanCache, driver_error

MAX_STATEMENTS = 64  # compiled statements kept (a handful are hot)
Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Written:
    """What a hot write did: the rows its RETURNING gave back (none without one), and how many
    rows it changed."""

    rows: list[Any]
    rowcount: int

    def one_or_none(self) -> Any | None:
        """The one row RETURNING gave back, or None; more than one is an error (as SQLAlchemy's)."""
        if len(self.rows) > 1:
            raise sa.exc.MultipleResultsFound(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None


def execute(connection: Connection, statement: UpdateBase, params: Mapping[str, Any]) -> Written:
    """Run `statement` (an INSERT or UPDATE built once: module level or cached) with `params`
    in `connection`'s transaction (begun if need be, as `execute` would)."""
    plan = _plans.get(statement, connection.dialect)
    if plan is None:
        result = connection.execute(statement, dict(params))
        rows = list(result.all()) if result.returns_rows else []
        return Written(rows, result.rowcount)
    if not connection.in_transaction():
        connection.begin()
    values = plan.compiled.construct_params(dict(params))
    for name, process in plan.bind_processors.items():
        values[name] = process(values[name])
    bound: Any = values if plan.positions is None else [values[name] for name in plan.positions]
    dbapi_connection = connection.connection.driver_connection
    assert dbapi_connection is not None, "a checked-out connection has its driver's connection"
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(plan.compiled.string, bound)
        rows = [plan.row(row) for row in cursor.fetchall()] if plan.row is not None else []
        return Written(rows, cursor.rowcount)
    except connection.dialect.loaded_dbapi.Error as exc:
        raise driver_error(connection, exc, plan.compiled.string, bound, cursor) from exc
    finally:
        cursor.close()


@dataclass(frozen=True)
class _Plan:
    compiled: SQLCompiler
    bind_processors: dict[str, Processor]  # by parameter name, only those that convert
    positions: list[str] | None  # parameter names in order (sqlite3), None for named ones (psycopg)
    row: Callable[[tuple[Any, ...]], Any] | None  # a driver row as a named tuple of Python values


def _make_plan(statement: UpdateBase, dialect: Dialect) -> _Plan | None:
    if dialect.driver not in ("psycopg", "pysqlite"):
        return None
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.post_compile_params
        or compiled.literal_execute_params
    ):
        return None  # a default to compute in Python, or an IN to expand: SQLAlchemy's job
    processors: dict[str, Processor] = {}
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    return _Plan(compiled, processors, compiled.positiontup, _row_maker(statement, dialect))


def _row_maker(statement: UpdateBase, dialect: Dialect) -> Callable[[tuple[Any, ...]], Any] | None:
    """How a RETURNING row becomes a named tuple of Python values (None without RETURNING)."""
    columns = list(statement.exported_columns)
    if not columns:
        return None
    row_type = namedtuple("Row", [str(column.key) for column in columns], rename=True)  # type: ignore[misc]
    processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    if not any(processors):
        return row_type._make
    pairs = list(enumerate(processors))

    def make(row: tuple[Any, ...]) -> Any:
        return row_type._make([row[i] if process is None else process(row[i]) for i, process in pairs])

    return make


_plans: PlanCache[UpdateBase, _Plan | None] = PlanCache(_make_plan, MAX_STATEMENTS)
