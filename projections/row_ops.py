"""Row operations: what a handler does to one row, said as data instead of SQL text.

The hot native handlers (run, step and artifact lifecycle) yield these instead
of SQL :data:`~projections.definition.Op` tuples. Said as data, a chunk's ops
can be folded per row in memory before anything is written
(:mod:`projections.coalesce`: a run's ten events become one row write), and
each one still renders to the SQL statement it stands for (:func:`to_sql`), so
the per-event path with savepoints, which pins a failing event as a fault,
runs exactly the statements it always ran.

The vocabulary is small on purpose: every operation addresses one row by its
full primary key (a key is the value of a one-column key, else a tuple of the
key's values in order). Anything else (a delete by a secondary column, OpenLineage's
subqueries) stays a SQL ``Op``.

- :class:`Insert`: a new row; an existing key is an error, as in SQL.
- :class:`Upsert`: insert, or on a key conflict update the given columns.
- :class:`Update`: change a row's columns if it exists (and a condition holds).
- :class:`Delete`: remove a row by key.

Values are plain values, or small expressions over the row being changed:
:class:`Add` (``column + n``), :class:`Minus` (``value - column``), ``NEW``
(an upsert's proposed value, SQL's ``excluded.column``), or :class:`Ref` (a
column of another row by key, a scalar subquery in SQL).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from .definition import Op, Table

__all__ = [
    "NEW",
    "Add",
    "Delete",
    "Insert",
    "Layout",
    "Minus",
    "Ref",
    "RowOp",
    "Update",
    "Upsert",
    "When",
    "is_row_op",
    "key_params",
    "layout",
    "to_sql",
    "to_sql_ops",
    "uuid_text",
]


class Add:
    """``column + amount`` (NULL stays NULL)."""

    __slots__ = ("amount", "column")

    def __init__(self, column: str, amount: int) -> None:
        self.column = column
        self.amount = amount


class Minus:
    """``value - column`` (NULL if either is NULL)."""

    __slots__ = ("column", "value")

    def __init__(self, value: int, column: str) -> None:
        self.value = value
        self.column = column


class Ref:
    """The value of ``column`` in the row of ``table`` at ``key`` (NULL if there is none)."""

    __slots__ = ("column", "key", "table")

    def __init__(self, table: str, key: Any, column: str) -> None:
        self.table = table
        self.key = key
        self.column = column


class _New:
    """An upsert's proposed value for a column (SQL's ``excluded.column``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEW"


NEW = _New()


class When:
    """A condition on another row: the row of ``table`` at ``key`` has ``column = value``."""

    __slots__ = ("column", "key", "table", "value")

    def __init__(self, table: str, key: Any, column: str, value: Any) -> None:
        self.table = table
        self.key = key
        self.column = column
        self.value = value


class Insert:
    """Insert ``row`` (column -> value or :class:`Ref`); a row with its key already is an error."""

    __slots__ = ("key", "row", "table")

    def __init__(self, table: str, row: dict[str, Any]) -> None:
        self.table = table
        self.row = row
        #: The row's key, once the coalescer worked it out.
        self.key: Any = None


class Upsert:
    """Insert ``row``; if its key exists, set the ``changes`` (``NEW`` or :class:`Add`) instead.

    No changes: SQL's ``ON CONFLICT DO NOTHING``.
    """

    __slots__ = ("changes", "key", "row", "table")

    def __init__(self, table: str, row: dict[str, Any], changes: dict[str, Any]) -> None:
        self.table = table
        self.row = row
        self.changes = changes
        #: The row's key, once the coalescer worked it out.
        self.key: Any = None


class Update:
    """Set ``changes`` on the row of ``table`` at ``key``, if it exists and ``when`` holds."""

    __slots__ = ("changes", "key", "table", "when")

    def __init__(
        self,
        table: str,
        key: Any,
        changes: dict[str, Any],
        when: When | None = None,
    ) -> None:
        self.table = table
        self.key = key
        self.changes = changes
        self.when = when


class Delete:
    """Delete the row of ``table`` at ``key`` (none there: nothing happens)."""

    __slots__ = ("key", "table")

    def __init__(self, table: str, key: Any) -> None:
        self.table = table
        self.key = key


RowOp = Insert | Upsert | Update | Delete
_ROW_OP_TYPES = (Insert, Upsert, Update, Delete)


def is_row_op(op: object) -> bool:
    """Whether ``op`` is a row operation (not a SQL ``Op`` tuple)."""
    return type(op) in _ROW_OP_TYPES


_to_builtins = msgspec.to_builtins


def uuid_text(value: UUID) -> str:
    """``str(value)``: the canonical text of a UUID.

    Through msgspec, whose C encoder writes the same canonical form
    (lowercase, hyphenated) in about a quarter of the time of
    ``UUID.__str__``, which is Python; a catch-up writes a few per event.
    """
    text: str = _to_builtins(value)
    return text


# -- table layouts -----------------------------------------------------------------

_COLUMN = re.compile(r"^\s*(\w+)\s+(\w+)(.*)$")
_PG_ARRAY = {"TEXT": "text[]", "BIGINT": "int8[]", "INTEGER": "int4[]"}


@dataclass(frozen=True, slots=True)
class Layout:
    """A view table's columns as the coalescer needs them."""

    columns: tuple[str, ...]
    key: tuple[str, ...]
    #: Indexes of the key columns in ``columns``.
    key_index: tuple[int, ...]
    not_null: frozenset[str]
    defaults: Mapping[str, Any]
    #: PostgreSQL array type of each column, for ``unnest``.
    pg_arrays: tuple[str, ...]
    column_set: frozenset[str]
    #: NOT NULL columns without a non-NULL default: a new row must be given them.
    required: frozenset[str]
    #: A dict row's key: its value for a one-column key, else a tuple.
    key_of: Callable[[Mapping[str, Any]], Any]
    #: A tuple row's key (columns in order), as ``key_of`` gives it.
    key_at: Callable[[Sequence[Any]], Any]
    #: A dict row's values in column order, as a tuple.
    values_of: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    #: A dict row's values of the NOT NULL columns, as a tuple.
    not_null_of: Callable[[Mapping[str, Any]], tuple[Any, ...]]


def _default(text: str) -> Any:
    match = re.search(r"DEFAULT\s+('(?:[^']|'')*'|-?\d+|NULL)", text, re.IGNORECASE)
    if match is None:
        return None
    value = match.group(1)
    if value.upper() == "NULL":
        return None
    if value.startswith("'"):
        return value[1:-1].replace("''", "'")
    return int(value)


@functools.cache
def layout(table: Table) -> Layout:
    """The columns, key, NOT NULL columns and defaults of ``table``."""
    columns: list[str] = []
    not_null: set[str] = set()
    defaults: dict[str, Any] = {}
    arrays: list[str] = []
    for part in table.columns.split(","):
        match = _COLUMN.match(part)
        if match is None:
            raise ValueError(f"cannot read the column definition {part!r}")
        name, kind, rest = match.groups()
        columns.append(name)
        arrays.append(_PG_ARRAY[kind.upper()])
        if "NOT NULL" in rest.upper():
            not_null.add(name)
        defaults[name] = _default(rest)
    key = tuple(k.strip() for k in table.primary_key.split(","))
    key_index = tuple(columns.index(k) for k in key)
    return Layout(
        tuple(columns),
        key,
        key_index,
        frozenset(not_null),
        defaults,
        tuple(arrays),
        frozenset(columns),
        frozenset(c for c in not_null if defaults[c] is None),
        operator.itemgetter(*key),
        operator.itemgetter(*key_index),
        _tuple_getter(columns),
        _tuple_getter([c for c in columns if c in not_null]),
    )


def _tuple_getter(columns: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``itemgetter`` that always gives a tuple (even of one item, or none)."""
    if not columns:
        return lambda row: ()
    getter = operator.itemgetter(*columns)
    if len(columns) > 1:
        return getter
    return lambda row: (getter(row),)


def key_params(shape: Layout, key: Any) -> tuple[Any, ...]:
    """A key (a value, or a tuple for a key of several columns) as statement parameters."""
    return tuple(key) if len(shape.key) > 1 else (key,)


# -- rendering to SQL --------------------------------------------------------------


def _where(key: Sequence[str]) -> str:
    return " AND ".join(f"{column} = ?" for column in key)


def _value_sql(value: Any, tables: Mapping[str, Table], params: list[Any]) -> str:
    if type(value) is Ref:
        shape = layout(tables[value.table])
        params.extend(key_params(shape, value.key))
        where = _where(shape.key)
        return f"(SELECT {value.column} FROM {{{value.table}}} WHERE {where})"
    params.append(value)
    return "?"


def _set_sql(
    table: str, changes: Mapping[str, Any], params: list[Any], *, upsert: bool
) -> list[str]:
    assignments = []
    for column, change in changes.items():
        kind = type(change)
        if kind is _New:
            assignments.append(f"{column} = excluded.{column}")
        elif kind is Add:
            # In an upsert the bare name would be ambiguous with excluded's.
            source = f"{{{table}}}.{change.column}" if upsert else change.column
            assignments.append(f"{column} = {source} + ?")
            params.append(change.amount)
        elif kind is Minus:
            assignments.append(f"{column} = ? - {change.column}")
            params.append(change.value)
        else:
            assignments.append(f"{column} = ?")
            params.append(change)
    return assignments


_sql_cache: dict[Any, str] = {}


def _shape(op: RowOp) -> Any:
    """What the SQL text of ``op`` depends on (not its values)."""
    kind = type(op)
    if kind is Insert or kind is Upsert:
        assert isinstance(op, Insert | Upsert)
        row = op.row
        refs = (
            tuple((c, v.table, v.column) for c, v in row.items() if type(v) is Ref)
            if Ref in map(type, row.values())
            else ()
        )
        changes = _changes_shape(op.changes) if isinstance(op, Upsert) else None
        return kind, op.table, tuple(row), refs, changes
    if isinstance(op, Update):
        when = op.when
        return (
            kind,
            op.table,
            _changes_shape(op.changes),
            None if when is None else (when.table, when.column),
        )
    assert isinstance(op, Delete)
    return kind, op.table


def _changes_shape(changes: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (c, type(v), v.column) if type(v) in (Add, Minus) else (c, v is NEW)
        for c, v in changes.items()
    )


def _change_params(changes: Mapping[str, Any], params: list[Any]) -> None:
    for change in changes.values():
        kind = type(change)
        if kind is Add:
            params.append(change.amount)
        elif kind is Minus:
            params.append(change.value)
        elif change is not NEW:
            params.append(change)


def _params(op: RowOp, tables: Mapping[str, Table]) -> tuple[Any, ...]:
    """The parameters of ``op``'s statement, in the order :func:`_build` puts its marks."""
    kind = type(op)
    if kind is Insert or kind is Upsert:
        assert isinstance(op, Insert | Upsert)
        params: list[Any] = []
        for value in op.row.values():
            if type(value) is Ref:
                params.extend(key_params(layout(tables[value.table]), value.key))
            else:
                params.append(value)
        if isinstance(op, Upsert):
            _change_params(op.changes, params)
        return tuple(params)
    if isinstance(op, Update):
        params = []
        _change_params(op.changes, params)
        params.extend(key_params(layout(tables[op.table]), op.key))
        when = op.when
        if when is not None:
            params.extend(key_params(layout(tables[when.table]), when.key))
            params.append(when.value)
        return tuple(params)
    assert isinstance(op, Delete)
    return key_params(layout(tables[op.table]), op.key)


def to_sql(op: RowOp, tables: Mapping[str, Table]) -> Op:
    """The SQL statement ``op`` stands for: what the per-event path runs.

    The text is built once per shape of op (its table, columns and kinds of
    change) and remembered; only the parameters are gathered per op.
    """
    shape = _shape(op)
    sql = _sql_cache.get(shape)
    if sql is None:
        if len(_sql_cache) >= 10_000:
            _sql_cache.clear()
        sql, params = _build(op, tables)
        _sql_cache[shape] = sql
        return sql, params
    return sql, _params(op, tables)


def _build(op: RowOp, tables: Mapping[str, Table]) -> Op:
    params: list[Any] = []
    kind = type(op)
    if kind is Insert or kind is Upsert:
        assert isinstance(op, Insert | Upsert)
        columns = ", ".join(op.row)
        values = ", ".join(_value_sql(v, tables, params) for v in op.row.values())
        sql = f"INSERT INTO {{{op.table}}} ({columns}) VALUES ({values})"
        if isinstance(op, Upsert):
            key = ", ".join(layout(tables[op.table]).key)
            if op.changes:
                assignments = _set_sql(op.table, op.changes, params, upsert=True)
                sql += f" ON CONFLICT ({key}) DO UPDATE SET {', '.join(assignments)}"
            else:
                sql += f" ON CONFLICT ({key}) DO NOTHING"
        return sql, tuple(params)
    if isinstance(op, Update):
        assignments = _set_sql(op.table, op.changes, params, upsert=False)
        sql = (
            f"UPDATE {{{op.table}}} SET {', '.join(assignments)} "
            f"WHERE {_where(layout(tables[op.table]).key)}"
        )
        params.extend(key_params(layout(tables[op.table]), op.key))
        when = op.when
        if when is not None:
            other = layout(tables[when.table])
            sql += (
                f" AND EXISTS (SELECT 1 FROM {{{when.table}}} WHERE "
                f"{_where(other.key)} AND {when.column} = ?)"
            )
            params.extend(key_params(other, when.key))
            params.append(when.value)
        return sql, tuple(params)
    assert isinstance(op, Delete)
    shape = layout(tables[op.table])
    sql = f"DELETE FROM {{{op.table}}} WHERE {_where(shape.key)}"
    return sql, key_params(shape, op.key)


def to_sql_ops(ops: Iterable[Op | RowOp], tables: Mapping[str, Table]) -> list[Op]:
    """An event's ops, each row operation rendered to its SQL statement."""
    return [op if isinstance(op, tuple) else to_sql(op, tables) for op in ops]
