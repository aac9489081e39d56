"""Bulk statements per database: PostgreSQL ``INSERT/UPDATE .. FROM unnest(arrays)``, SQLite
``executemany``.

The repository's hot writes (frames, ECG blocks, vitals, beats, alert updates) go through
:func:`fast_insert` / :func:`alert_update`: a statement compiled once per dialect, table and
column list (:class:`FastInsert`), run for many rows without SQLAlchemy's per-row machinery,
inside the caller's transaction (nothing is committed here).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Dialect, Table, TypeDecorator, bindparam, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import sqltypes

from heartline.storage.errors import StorageError
from heartline.storage.tables import Alert, UtcDateTime

__all__ = ["FastInsert", "alert_update", "fast_insert"]


def _dialect_insert(dialect: Dialect) -> Callable[[Table], Any]:
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported backends
        raise StorageError(
            f"unsupported database dialect {dialect.name!r}: use PostgreSQL or SQLite"
        )
    return insert


def _pg_json_text(value: Any) -> str:
    """A JSON column's value as the text PostgreSQL stores (psycopg's ``Json`` dumps the same,
    ``json.dumps``; ``None`` is JSON ``null``, as SQLAlchemy's ``JSON`` binds it)."""
    return json.dumps(value)


@dataclass(frozen=True)
class FastInsert:
    """A one-row ``INSERT [.. ON CONFLICT DO NOTHING] [.. RETURNING]`` compiled once per
    dialect and table, run for many rows without SQLAlchemy's per-row machinery.

    The rows are bound with the columns' own SQLAlchemy bind processors (the stored values are
    those ``session.execute(insert(table), rows)`` stores) and handed to the DBAPI cursor in the
    session's transaction. SQLAlchemy's ``executemany`` builds a parameter dictionary per row
    through its compiled-statement machinery, which cost more than the database's own work for
    the live pipeline's many small rows.

    SQLite: :meth:`run` is one ``executemany`` (sqlite3 steps a prepared statement per row in
    C), :meth:`run_returning` multi-row ``VALUES`` statements whose ``RETURNING`` rows come
    back.

    PostgreSQL: both are **one** ``INSERT .. SELECT .. FROM unnest(%(c0)s::type[], ..)``
    statement per call, each column's values sent as one array parameter. psycopg's
    ``executemany`` sends one Bind/Execute per row and spends ~40 us of Python per row doing so
    (pipeline mode), and multi-row ``VALUES`` make a new SQL text per row count that psycopg
    parses again each time; the ``unnest`` text is constant, so psycopg caches its parsing and
    prepares it on the server. JSON columns are bound as their JSON text and cast
    (``json[]``), which is what psycopg's ``Json`` wrapper sends.
    """

    sql: str
    names: tuple[str, ...]  # bound parameters, in the statement's order
    order: tuple[int, ...]  # position of each of ``names`` in the caller's columns
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    # ``sql`` split around its one VALUES row, for multi-row statements (SQLite)
    head: str
    row: str
    tail: str
    #: ``sql`` is ``INSERT .. SELECT .. FROM unnest(arrays)`` (PostgreSQL)
    arrays: bool = False
    #: per column, the function writing one bound value as a PostgreSQL array element
    elements: tuple[Callable[[Any], str], ...] = ()

    #: Rows per multi-row statement (SQLite allows 32766 parameters).
    CHUNK_ROWS = 500

    @classmethod
    def build(
        cls,
        dialect: Dialect,
        table: Table,
        columns: Sequence[str],
        conflict: Sequence[str] = (),
        returning: Sequence[str] = (),
    ) -> FastInsert:
        if dialect.name == "postgresql":
            return cls._build_unnest(dialect, table, columns, conflict, returning)
        insert = _dialect_insert(dialect)
        stmt = insert(table).values({c: bindparam(c) for c in columns})
        if conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        if returning:
            stmt = stmt.returning(*(table.c[c] for c in returning))
        sql, names, processors, positional = _compile_binds(dialect, stmt, columns)
        order = tuple(list(columns).index(n) for n in names)
        start = sql.index(" VALUES (") + len(" VALUES ")
        depth, stop = 0, start
        for stop in range(start, len(sql)):
            depth += {"(": 1, ")": -1}.get(sql[stop], 0)
            if depth == 0:
                break
        row = sql[start : stop + 1]
        if depth or row.count("?" if positional else "%(") != len(names):
            raise StorageError(f"cannot find the VALUES row of {sql!r}")  # pragma: no cover
        return cls(sql, names, order, processors, positional, sql[:start], row, sql[stop + 1 :])

    @classmethod
    def _build_unnest(
        cls,
        dialect: Dialect,
        table: Table,
        columns: Sequence[str],
        conflict: Sequence[str],
        returning: Sequence[str],
    ) -> FastInsert:
        quote = dialect.identifier_preparer.quote
        cols = ", ".join(quote(c) for c in columns)
        arrays = ", ".join(
            f"%(c{i})s::{table.c[c].type.compile(dialect=dialect)}[]" for i, c in enumerate(columns)
        )
        sql = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({cols}) "
            f"SELECT {cols} FROM unnest({arrays}) AS u({cols})"
        )
        if conflict:
            sql += f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING"
        if returning:
            sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
        processors, literals = [], []
        for c in columns:
            impl = table.c[c].type.dialect_impl(dialect)
            if isinstance(impl, sqltypes.JSON):
                processors.append(_pg_json_text)
            elif isinstance(impl, sqltypes.LargeBinary):  # bytes as they are (no DBAPI wrapper)
                processors.append(None)
            else:
                processors.append(impl.bind_processor(dialect))
            literals.append(_pg_array_element(impl))
        names = tuple(columns)
        return cls(
            sql,
            names,
            tuple(range(len(names))),
            tuple(processors),
            False,
            "",
            "",
            "",
            True,
            tuple(literals),
        )

    def _bind(self, rows: Sequence[Sequence[Any]], prebound: frozenset[str]) -> list[list[Any]]:
        order = self.order
        procs = [
            (i, f)
            for i, (n, f) in enumerate(zip(self.names, self.processors, strict=True))
            if f is not None and n not in prebound
        ]
        bound = []
        for r in rows:
            values = [r[j] for j in order]
            for i, f in procs:
                values[i] = f(values[i])
            bound.append(values)
        return bound

    def _columns(self, rows: Sequence[Sequence[Any]], prebound: frozenset[str]) -> dict[str, str]:
        """``rows`` bound and transposed into one array literal per column (``unnest``
        parameters). The literals are written here with C-level string operations: psycopg's
        list dumpers loop over the elements in Python (text format also escapes each element
        with a regular expression), which cost more than the per-row ``executemany`` they
        replace."""
        out: dict[str, str] = {}
        for i, (n, f, element) in enumerate(
            zip(self.names, self.processors, self.elements, strict=True)
        ):
            values = [r[i] for r in rows]
            if f is not None and n not in prebound:
                values = [f(v) for v in values]
            out[f"c{i}"] = (
                "{" + ",".join([element(v) if v is not None else "NULL" for v in values]) + "}"
            )
        return out

    def run(
        self,
        session: Session,
        rows: Sequence[Sequence[Any]],
        *,
        prebound: frozenset[str] = frozenset(),
    ) -> int:
        """Insert ``rows`` (values in the ``columns`` order of :meth:`build`; those named in
        ``prebound`` already bound with :meth:`processor`); the number of rows inserted
        (conflicting rows are not counted)."""
        if not rows:
            return 0
        if self.arrays:
            result = session.connection().exec_driver_sql(self.sql, self._columns(rows, prebound))
            return int(result.rowcount)
        bound = self._bind(rows, prebound)
        params: list[Any] = (
            [tuple(v) for v in bound]
            if self.positional
            else [dict(zip(self.names, v, strict=True)) for v in bound]
        )
        result = session.connection().exec_driver_sql(self.sql, params)
        return int(result.rowcount)

    def run_returning(
        self,
        session: Session,
        rows: Sequence[Sequence[Any]],
        *,
        prebound: frozenset[str] = frozenset(),
    ) -> list[Any]:
        """Insert ``rows`` (as in :meth:`run`); the ``RETURNING`` rows of those inserted."""
        if not rows:
            return []
        conn = session.connection()
        if self.arrays:
            return list(conn.exec_driver_sql(self.sql, self._columns(rows, prebound)).all())
        out: list[Any] = []
        for k in range(0, len(rows), self.CHUNK_ROWS):
            bound = self._bind(rows[k : k + self.CHUNK_ROWS], prebound)
            if self.positional:
                sql = self.head + ", ".join([self.row] * len(bound)) + self.tail
                flat: Any = tuple(v for values in bound for v in values)
            else:  # pragma: no cover - SQLite is positional, PostgreSQL uses arrays
                parts, flat = [], {}
                for i, values in enumerate(bound):
                    parts.append(self.row.replace(")s", f"_{i})s"))
                    flat.update({f"{n}_{i}": v for n, v in zip(self.names, values, strict=True)})
                sql = self.head + ", ".join(parts) + self.tail
            out.extend(conn.exec_driver_sql(sql, flat).all())
        return out

    def processor(self, column: str) -> Callable[[Any], Any]:
        """The bind processor of ``column`` (identity when the type has none)."""
        f = self.processors[self.names.index(column)]
        return f if f is not None else (lambda v: v)


def _pg_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pg_bytea_element(value: bytes) -> str:
    return '"\\\\x' + bytes(value).hex() + '"'


def _pg_time_element(value: datetime) -> str:
    if value.tzinfo is None:  # the column's processor already refused naive times
        raise ValueError(f"naive datetime {value!r}")  # pragma: no cover
    return '"' + value.isoformat() + '"'


def _pg_array_element(impl: Any) -> Callable[[Any], str]:
    """How a bound value of the column type ``impl`` is written inside a PostgreSQL array
    literal (``NULL`` is handled by the caller): quoted and backslash-escaped text (also JSON
    text), ``\\x`` hex for ``bytea``, ISO 8601 with offset for ``timestamptz``, ``str`` of
    integers and ``repr`` of floats (``nan``/``inf`` are valid ``float8`` input)."""
    if isinstance(impl, TypeDecorator):  # e.g. UtcDateTime: its bound values are the impl's
        impl = impl.impl_instance
    if isinstance(impl, sqltypes.JSON | sqltypes.String):
        return _pg_quoted
    if isinstance(impl, sqltypes.LargeBinary):
        return _pg_bytea_element
    if isinstance(impl, sqltypes.DateTime):
        return _pg_time_element
    if isinstance(impl, sqltypes.Integer):
        return lambda v: str(int(v))
    if isinstance(impl, sqltypes.Float):
        return lambda v: repr(float(v))
    raise StorageError(f"no PostgreSQL array element writer for {impl!r}")  # pragma: no cover


def _compile_binds(
    dialect: Dialect, stmt: Any, columns: Sequence[str]
) -> tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...], bool]:
    """SQL text, bound parameter names in statement order, their (quick) bind processors and
    whether the paramstyle is positional, for a statement binding exactly ``columns``."""
    # for_executemany: no implicit RETURNING of the primary key (PostgreSQL)
    compiled = stmt.compile(dialect=dialect, for_executemany=True)
    positional = dialect.paramstyle in ("qmark", "format")
    names = tuple(compiled.positiontup or ()) if positional else tuple(columns)
    if sorted(names) != sorted(columns):  # pragma: no cover - a SQLAlchemy change
        raise StorageError(f"compiled statement binds {names}, expected {list(columns)}")
    # the dialect's implementation of each type (PostgreSQL's JSON wraps values for psycopg)
    processors = tuple(
        _quick_processor(
            compiled.binds[n].type,
            dialect,
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect),
        )
        for n in names
    )
    return compiled.string, names, processors, positional


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """:class:`UtcDateTime` bound for SQLite (aware -> naive UTC -> SQLAlchemy's text format)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(
            f"naive datetime {value!r}: Heartline stores timezone-aware UTC times only"
        )
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_UTC_PROBES = (
    datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1, 1, 1, 0, 0, 0, 7, tzinfo=UTC),
)


def _quick_processor(
    type_: Any, dialect: Dialect, processor: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    """A faster equivalent of ``processor`` where one is known and gives the same values.

    :class:`UtcDateTime` on SQLite goes through a TypeDecorator and SQLAlchemy's text
    formatting (about 4 us a value, ~5 values a frame); :func:`_sqlite_utc_text` is used instead
    only after it bound a set of probe datetimes exactly as the processor does.
    """
    if processor is None or dialect.name != "sqlite" or not isinstance(type_, UtcDateTime):
        return processor
    if all(_sqlite_utc_text(t) == processor(t) for t in _UTC_PROBES) and processor(None) is None:
        return _sqlite_utc_text
    return processor  # pragma: no cover - a SQLAlchemy storage format change


_FAST_INSERTS: dict[tuple[Any, ...], FastInsert] = {}
_FAST_LOCK = threading.Lock()


def fast_insert(
    session: Session,
    table: Table,
    columns: Sequence[str],
    conflict: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> FastInsert:
    dialect = session.get_bind().dialect
    key = (dialect.name, table.name, tuple(columns), tuple(conflict), tuple(returning))
    found = _FAST_INSERTS.get(key)
    if found is None:
        with _FAST_LOCK:
            found = _FAST_INSERTS.setdefault(
                key, FastInsert.build(dialect, table, columns, conflict, returning)
            )
    return found


_ALERT_UPDATE_COLUMNS = ("id", "severity", "end_time", "evidence")


def alert_update(session: Session) -> FastInsert:
    """``UPDATE alerts SET severity, end_time, evidence WHERE id`` for many rows, compiled once
    per dialect: an ``executemany`` on SQLite, one ``UPDATE .. FROM unnest(arrays)`` on
    PostgreSQL (see :class:`FastInsert`)."""
    dialect = session.get_bind().dialect
    key = (dialect.name, "alerts", "update")
    found = _FAST_INSERTS.get(key)
    if found is not None:
        return found
    table = Alert.__table__
    if dialect.name == "postgresql":
        proto = FastInsert.build(dialect, table, _ALERT_UPDATE_COLUMNS)
        quote = dialect.identifier_preparer.quote
        arrays = proto.sql[proto.sql.index("unnest(") :]  # unnest(..) AS u(id, ..)
        sets = ", ".join(f"{quote(c)} = u.{quote(c)}" for c in _ALERT_UPDATE_COLUMNS[1:])
        sql = (
            f"UPDATE {dialect.identifier_preparer.format_table(table)} SET {sets} "
            f"FROM {arrays} WHERE {quote(table.name)}.{quote('id')} = u.{quote('id')}"
        )
        found = dataclasses.replace(proto, sql=sql)
    else:
        stmt = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(
                severity=bindparam("severity"),
                end_time=bindparam("end_time"),
                evidence=bindparam("evidence"),
            )
        )
        columns = ("_id", *_ALERT_UPDATE_COLUMNS[1:])
        sql, names, processors, positional = _compile_binds(dialect, stmt, columns)
        order = tuple(columns.index(n) for n in names)
        found = FastInsert(sql, names, order, processors, positional, "", "", "")
    with _FAST_LOCK:
        return _FAST_INSERTS.setdefault(key, found)
