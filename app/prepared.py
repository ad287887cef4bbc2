"""Write-path statements compiled once and run straight on the DBAPI cursor.

A webhook or a bot update runs six to ten small statements. Even with prebuilt statements,
SQLAlchemy spends about twice as long per statement as SQLite itself (execution context,
parameter dictionaries, result metadata), and on PostgreSQL it doubles a statement's round
trip (`bench/pg_statement.py`: 212 us through Connection.execute, 122 us on asyncpg's DBAPI
cursor, 108 us for asyncpg itself). `Prepared` keeps the Core statement as the single definition,
compiles it once per dialect, and executes the compiled SQL on the DBAPI cursor with the same
bind and result processors SQLAlchemy would apply: SQLite's, and asyncpg's (whose cursor keeps
each connection's prepared statements, so a statement is prepared once per connection). Other
drivers go through `Connection.execute` unchanged. Errors are raised as SQLAlchemy's DBAPIError
family either way, so callers catch one kind of exception.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

_MISSING = object()


class _RowBase(tuple[Any, ...]):
    """Rows answer by attribute (row.id) like SQLAlchemy's Row, and to row._mapping."""

    __slots__ = ()
    _fields: tuple[str, ...]
    _make: Callable[[Iterable[Any]], Any]

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    # Per positional parameter: (name, fixed value or _MISSING, bind processor or None).
    params: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    row_type: type[_RowBase] | None
    result_processors: tuple[Callable[[Any], Any] | None, ...]

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, fixed, process in self.params:
            value = values[name] if fixed is _MISSING else values.get(name, fixed)
            out.append(process(value) if process is not None else value)
        return tuple(out)

    def row(self, raw: tuple[Any, ...]) -> Any:
        assert self.row_type is not None
        return self.row_type._make(
            p(v) if p is not None else v for p, v in zip(self.result_processors, raw, strict=True)
        )


def _plan(statement: ClauseElement, dialect: Dialect) -> _Plan | None:
    """The compiled form, or None when this statement needs SQLAlchemy's own execution."""
    compiled: Any = statement.compile(dialect=dialect)
    if compiled.positiontup is None or compiled.update_prefetch:
        return None
    defaults: dict[str, Any] = {}
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not default.is_scalar:
            return None  # a Python-side callable default: leave it to SQLAlchemy
        defaults[column.key] = default.arg
    processors = compiled._bind_processors
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    params = []
    for name in compiled.positiontup:
        bind = by_name[name]
        if name in defaults:
            fixed = defaults[name]
        elif bind.required:
            fixed = _MISSING
        elif bind.callable is not None:
            return None
        else:
            fixed = bind.value
        params.append((name, fixed, processors.get(name)))
    row_type: type[_RowBase] | None = None
    result_processors: list[Callable[[Any], Any] | None] = []
    if compiled._result_columns:
        names = [column[0] for column in compiled._result_columns]
        row_type = type(
            "PreparedRow",
            (namedtuple("_Row", names), _RowBase),
            {"__slots__": ()},
        )
        result_processors = [
            column[3]._cached_result_processor(dialect, None) for column in compiled._result_columns
        ]
    return _Plan(compiled.string, tuple(params), row_type, tuple(result_processors))


class Prepared:
    """One Core statement; `first`, `run` and `run_many` execute it on a sync Connection."""

    __slots__ = ("_plans", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[type[Dialect], _Plan | None] = {}

    def _plan_for(self, conn: Connection) -> _Plan | None:
        dialect = conn.dialect
        if dialect.name != "sqlite" and dialect.driver != "asyncpg":
            return None
        try:
            return self._plans[type(dialect)]
        except KeyError:
            plan = self._plans[type(dialect)] = _plan(self.statement, dialect)
            return plan

    def first(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """The first result row, or None."""
        plan = self._plan_for(conn)
        if plan is None:
            return conn.execute(self.statement, values).first()
        cursor = _execute(conn, plan.sql, plan.bind(values))
        try:
            raw = cursor.fetchone()
            if raw is None:
                return None
            if cursor.description is not None:
                cursor.fetchall()  # RETURNING rows are only final once read to the end
            return plan.row(raw)
        finally:
            cursor.close()

    def run(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Execute without result rows; the number of rows it changed."""
        plan = self._plan_for(conn)
        if plan is None:
            return int(conn.execute(self.statement, values).rowcount or 0)
        cursor = _execute(conn, plan.sql, plan.bind(values))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, conn: Connection, many: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set (executemany)."""
        if not many:
            return
        plan = self._plan_for(conn)
        if plan is None:
            conn.execute(self.statement, list(many))
            return
        params = [plan.bind(values) for values in many]
        _execute(conn, plan.sql, params, many=True).close()


def _execute(conn: Connection, sql: str, params: Any, *, many: bool = False) -> Any:
    """A cursor that has run `sql` on the DBAPI connection. The driver's errors come out as
    SQLAlchemy raises them (IntegrityError, OperationalError ...), parameters hidden."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        (cursor.executemany if many else cursor.execute)(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        cursor.close()
        raise DBAPIError.instance(
            sql, params, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True
        ) from exc
    return cursor


def run_sql(conn: Connection, sql: str) -> None:
    """A parameterless command (BEGIN, SAVEPOINT, COMMIT ...), straight on the DBAPI cursor."""
    if conn.dialect.name != "sqlite" and conn.dialect.driver != "asyncpg":
        conn.exec_driver_sql(sql)
        return
    _execute(conn, sql, ()).close()
