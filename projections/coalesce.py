"""Folding a chunk's row operations per row in memory, then writing each row once.

A catch-up applies many events to the same rows: a run row is inserted, then
counted at each step start and finish, then finished. Run statement by
statement, that is ten writes of one row; coalesced, it is one. For a
segment of events whose ops are all row operations (:mod:`projections.row_ops`),
:func:`coalesce_segment`:

1. collects the rows the segment touches (table and primary key);
2. loads, in one query per table (:class:`LoadRows`), those whose state
   before the segment matters: rows it updates, upserts, reads or deletes.
   A row whose first touch is an :class:`~projections.row_ops.Insert` and
   which is never deleted is not loaded: its plain INSERT at the end fails
   if it existed, as the statement would have;
3. interprets every op in log order on dict rows, with the statements'
   meaning (a conflicting insert, a NULL in a NOT NULL column, an unknown
   column are errors; an update of a missing row does nothing);
4. writes the difference (:class:`WriteRows`, one request per table): new
   rows inserted, existing rows changed, deleted rows removed.

Any error, in the interpretation or in SQL, raises :class:`CoalesceFailed`:
the caller rolls the transaction back and runs the batch event by event with
savepoints, which finds the failing event and records it as a fault. So the
coalesced path only has to agree with the statements on success, and it is
checked against them by a property test (tests/test_coalesce_property.py).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any, NamedTuple

from .definition import Op, Table
from .row_ops import NEW, Add, Delete, Insert, Layout, Minus, Ref, RowOp, Update, Upsert, layout

__all__ = ["CoalesceFailed", "LoadRows", "WriteRows", "coalesce_segment"]


class LoadRows(NamedTuple):
    """Fetch the rows of ``table`` (physical name) at ``keys``; the result is their rows."""

    table: str
    layout: Layout
    keys: list[tuple[Any, ...]]


class WriteRows(NamedTuple):
    """Write a table's coalesced rows: all in column order of ``layout``; the result is None.

    ``inserts`` are new (a key that exists is an error), ``updates`` replace
    existing rows by key, ``deletes`` are keys to remove.
    """

    table: str
    layout: Layout
    inserts: list[tuple[Any, ...]]
    updates: list[tuple[Any, ...]]
    deletes: list[tuple[Any, ...]]


class CoalesceFailed(Exception):
    """The segment cannot be applied coalesced: redo the batch event by event."""


_MISSING = object()

Row = dict[str, Any]
Segment = Generator[LoadRows | WriteRows, Any, None]


def _row_key(row: Mapping[str, Any], shape: Layout) -> tuple[Any, ...]:
    return tuple(row[column] for column in shape.key)


class _Tables:
    """The rows of a segment: each table's rows by key, None for a row known absent."""

    def __init__(self, tables: Mapping[str, Table]) -> None:
        self.definitions = tables
        self.layouts: dict[str, Layout] = {}
        self.rows: dict[str, dict[tuple[Any, ...], Row | None]] = {}
        #: Keys that existed before the segment, per table (loaded and found).
        self.existed: dict[str, set[tuple[Any, ...]]] = {}
        #: Keys written, per table, in the order first written.
        self.dirty: dict[str, dict[tuple[Any, ...], None]] = {}

    def layout(self, table: str) -> Layout:
        shape = self.layouts.get(table)
        if shape is None:
            shape = self.layouts[table] = layout(self.definitions[table])
            self.rows[table] = {}
            self.existed[table] = set()
            self.dirty[table] = {}
        return shape


def _plan(ops: Sequence[RowOp], tables: _Tables) -> dict[str, list[tuple[Any, ...]]]:
    """The keys to load per table: every key touched, but those first inserted and never deleted."""
    first: dict[tuple[str, tuple[Any, ...]], bool] = {}  # (table, key) -> first touch inserts
    deleted: set[tuple[str, tuple[Any, ...]]] = set()

    def touch(table: str, key: tuple[Any, ...], inserts: bool) -> None:
        first.setdefault((table, key), inserts)

    for op in ops:
        kind = type(op)
        if kind is Insert or kind is Upsert:
            assert isinstance(op, Insert | Upsert)
            for value in op.row.values():
                if type(value) is Ref:
                    tables.layout(value.table)
                    touch(value.table, value.key, False)
            touch(op.table, _row_key(op.row, tables.layout(op.table)), kind is Insert)
        elif kind is Update:
            assert isinstance(op, Update)
            tables.layout(op.table)
            touch(op.table, op.key, False)
            when = op.when
            if when is not None:
                tables.layout(when.table)
                touch(when.table, when.key, False)
        else:
            assert isinstance(op, Delete)
            tables.layout(op.table)
            touch(op.table, op.key, False)
            deleted.add((op.table, op.key))
    load: dict[str, list[tuple[Any, ...]]] = {}
    for (table, key), inserts in first.items():
        if not inserts or (table, key) in deleted:
            load.setdefault(table, []).append(key)
    return load


def _value(value: Any, tables: _Tables) -> Any:
    if type(value) is Ref:
        row = tables.rows[value.table].get(value.key)
        return None if row is None else row[value.column]
    return value


def _full_row(op: Insert | Upsert, shape: Layout, tables: _Tables) -> Row:
    row = dict(shape.defaults)
    for column, value in op.row.items():
        if column not in row:
            raise CoalesceFailed(f"no column {column!r} in {op.table}")
        row[column] = _value(value, tables)
    for column in shape.not_null:
        if row[column] is None:
            raise CoalesceFailed(f"NULL in {op.table}.{column}")
    return row


def _changed(old: Row, changes: Mapping[str, Any], proposed: Row | None) -> Row:
    """``old`` with ``changes`` applied, every expression reading the old values (as SQL does)."""
    new = dict(old)
    for column, change in changes.items():
        if column not in old:
            raise CoalesceFailed(f"no column {column!r}")
        kind = type(change)
        if kind is Add:
            current = old[change.column]
            new[column] = None if current is None else current + change.amount
        elif kind is Minus:
            current = old[change.column]
            new[column] = (
                None if current is None or change.value is None else change.value - current
            )
        elif change is NEW:
            assert proposed is not None
            new[column] = proposed[column]
        else:
            new[column] = change
    return new


def _interpret(ops: Sequence[RowOp], tables: _Tables) -> None:
    rows = tables.rows
    dirty = tables.dirty
    for op in ops:
        kind = type(op)
        if kind is Insert:
            assert isinstance(op, Insert)
            shape = tables.layouts[op.table]
            row = _full_row(op, shape, tables)
            key = _row_key(row, shape)
            table_rows = rows[op.table]
            if table_rows.get(key) is not None:
                raise CoalesceFailed(f"{op.table}: the key {key} exists")
            table_rows[key] = row
            dirty[op.table][key] = None
        elif kind is Update:
            assert isinstance(op, Update)
            known = tables.layouts[op.table].column_set
            for column, change in op.changes.items():
                # A statement naming an unknown column fails even if no row matches.
                if column not in known or (
                    type(change) in (Add, Minus) and change.column not in known
                ):
                    raise CoalesceFailed(f"no column {column!r} in {op.table}")
            table_rows = rows[op.table]
            old = table_rows.get(op.key)
            if old is None:
                continue
            when = op.when
            if when is not None:
                other = rows[when.table].get(when.key)
                if other is None or other[when.column] != when.value:
                    continue
            new = _changed(old, op.changes, None)
            for column in tables.layouts[op.table].not_null:
                if new[column] is None:
                    raise CoalesceFailed(f"NULL in {op.table}.{column}")
            table_rows[op.key] = new
            dirty[op.table][op.key] = None
        elif kind is Upsert:
            assert isinstance(op, Upsert)
            shape = tables.layouts[op.table]
            proposed = _full_row(op, shape, tables)
            key = _row_key(proposed, shape)
            table_rows = rows[op.table]
            old = table_rows.get(key)
            if old is None:
                table_rows[key] = proposed
            elif op.changes:
                new = _changed(old, op.changes, proposed)
                for column in shape.not_null:
                    if new[column] is None:
                        raise CoalesceFailed(f"NULL in {op.table}.{column}")
                table_rows[key] = new
            else:
                continue  # DO NOTHING
            dirty[op.table][key] = None
        else:
            assert isinstance(op, Delete)
            table_rows = rows[op.table]
            if table_rows.get(op.key) is not None:
                table_rows[op.key] = None
                dirty[op.table][op.key] = None


def coalesce_segment(
    ops: Sequence[RowOp], tables: Mapping[str, Table], physical: Mapping[str, str]
) -> Segment:
    """Apply a segment's row ops (in log order) coalesced per row; see the module docstring.

    Raises CoalesceFailed on any error (the caller redoes the batch event by event).
    """
    state = _Tables(tables)
    try:
        load = _plan(ops, state)
    except (KeyError, TypeError) as exc:
        raise CoalesceFailed(f"{type(exc).__name__}: {exc}") from exc
    for table, keys in load.items():
        shape = state.layouts[table]
        try:
            found = yield LoadRows(physical[table], shape, keys)
        except Exception as exc:
            raise CoalesceFailed(str(exc)) from exc
        table_rows = state.rows[table]
        existed = state.existed[table]
        for key in keys:
            table_rows[key] = None
        columns = shape.columns
        key_index = shape.key_index
        for values in found:
            key = tuple(values[i] for i in key_index)
            table_rows[key] = dict(zip(columns, values, strict=True))
            existed.add(key)
    try:
        _interpret(ops, state)
    except CoalesceFailed:
        raise
    except Exception as exc:  # an op the statements would reject in some other way
        raise CoalesceFailed(f"{type(exc).__name__}: {exc}") from exc
    for table, keys_written in state.dirty.items():
        if not keys_written:
            continue
        shape = state.layouts[table]
        columns = shape.columns
        table_rows = state.rows[table]
        existed = state.existed[table]
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        deletes: list[tuple[Any, ...]] = []
        for key in keys_written:
            row = table_rows[key]
            if row is None:
                if key in existed:
                    deletes.append(key)
            elif key in existed:
                updates.append(tuple([row[c] for c in columns]))
            else:
                inserts.append(tuple([row[c] for c in columns]))
        if not (inserts or updates or deletes):
            continue
        try:
            yield WriteRows(physical[table], shape, inserts, updates, deletes)
        except Exception as exc:
            raise CoalesceFailed(str(exc)) from exc


def row_ops_only(ops: Sequence[Op | RowOp]) -> bool:
    """Whether an event's ops are all row operations (it can join a coalesced segment)."""
    return all(type(op) is not tuple for op in ops)
