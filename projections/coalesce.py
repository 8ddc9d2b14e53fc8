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
4. writes the difference (:class:`WriteMany`, one request for the segment,
   a :class:`WriteRows` per table): new rows inserted, existing rows
   changed, deleted rows removed.

A runner does this on the views stores that ask for it (``coalesces``):
PostgreSQL, where it replaces a round trip per statement; not SQLite, where
it measured slower than the statements themselves.

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

__all__ = ["CoalesceFailed", "LoadRows", "WriteMany", "WriteRows", "coalesce_segment"]


class LoadRows(NamedTuple):
    """Fetch the rows of ``table`` (physical name) at ``keys``; the result is their rows.

    A key is the value of a one-column key, else a tuple (``Layout.key_of``).
    """

    table: str
    layout: Layout
    keys: list[Any]


class WriteRows(NamedTuple):
    """Write a table's coalesced rows: all in column order of ``layout``; the result is None.

    ``inserts`` are new (a key that exists is an error), ``updates`` replace
    existing rows by key, ``deletes`` are keys to remove (each a tuple of the
    key's columns).
    """

    table: str
    layout: Layout
    inserts: list[tuple[Any, ...]]
    updates: list[tuple[Any, ...]]
    deletes: list[tuple[Any, ...]]


class WriteMany(NamedTuple):
    """Write a segment's coalesced rows, table by table; the result is None.

    One request for every table a segment wrote, so a driver can send them
    all in one round trip (PostgreSQL: one statement).
    """

    writes: tuple[WriteRows, ...]


class CoalesceFailed(Exception):
    """The segment cannot be applied coalesced: redo the batch event by event."""


Row = dict[str, Any]
Segment = Generator[LoadRows | WriteMany, Any, None]


class _Tables:
    """The rows of a segment: each table's rows by key, None for a row known absent."""

    def __init__(self, tables: Mapping[str, Table]) -> None:
        self.definitions = tables
        self.layouts: dict[str, Layout] = {}
        self.rows: dict[str, dict[Any, Row | None]] = {}
        #: Keys that existed before the segment, per table (loaded and found).
        self.existed: dict[str, set[Any]] = {}
        #: Keys written, per table, in the order first written.
        self.dirty: dict[str, dict[Any, None]] = {}
        #: Inserts and upserts (by id) with a Ref: their rows are completed as they run.
        self.with_refs: set[int] = set()

    def add(self, table: str) -> Layout:
        shape = self.layouts[table] = layout(self.definitions[table])
        self.rows[table] = {}
        self.existed[table] = set()
        self.dirty[table] = {}
        return shape


def _plan(ops: Sequence[RowOp], tables: _Tables) -> dict[str, list[Any]]:
    """The keys to load per table: every key touched, but those first inserted and never deleted."""
    # table -> key -> whether its first touch inserts it
    first: dict[str, dict[Any, bool]] = {}
    deleted: set[tuple[str, Any]] = set()
    layouts = tables.layouts
    with_refs = tables.with_refs
    for table in tables.definitions:
        first[table] = {}
    for op in ops:
        kind = type(op)
        if kind is Update:
            assert isinstance(op, Update)
            first[op.table].setdefault(op.key, False)
            when = op.when
            if when is not None:
                first[when.table].setdefault(when.key, False)
        elif kind is Insert or kind is Upsert:
            assert isinstance(op, Insert | Upsert)
            row = op.row
            table = op.table
            shape = layouts.get(table) or tables.add(table)
            if _REF in map(type, row.values()):
                with_refs.add(id(op))
                for value in row.values():
                    if type(value) is Ref:
                        first[value.table].setdefault(value.key, False)
            else:
                # Its row depends on nothing else: complete it now, once.
                _complete(row, shape, table)
            key = op.key = shape.key_of(row)
            first[table].setdefault(key, kind is Insert)
        else:
            assert isinstance(op, Delete)
            first[op.table].setdefault(op.key, False)
            deleted.add((op.table, op.key))
    load: dict[str, list[Any]] = {}
    for table, keys in first.items():
        if not keys:
            continue
        if table not in layouts:
            tables.add(table)
        wanted = [key for key, inserts in keys.items() if not inserts or (table, key) in deleted]
        if wanted:
            load[table] = wanted
    return load


_REF = Ref


def _complete(row: Row, shape: Layout, table: str) -> None:
    """Give ``row`` its columns' defaults and check it as the INSERT would, in place.

    The op's own dict becomes the row (half the memory of a copy): the
    defaults it gains say, if the op is ever rendered to SQL after all, what
    the statement's column defaults would have said.
    """
    if len(row) != len(shape.columns):
        for column, default in shape.defaults.items():
            if column not in row:
                row[column] = default
        if len(row) != len(shape.columns):
            raise CoalesceFailed(f"an unknown column in {table}")
    # A required column not given is None here too (its default is NULL).
    if None in shape.not_null_of(row):
        raise CoalesceFailed(f"NULL in a NOT NULL column of {table}")


def _full_row(op: Insert | Upsert, shape: Layout, tables: _Tables) -> Row:
    """The row an insert or upsert proposes: completed by :func:`_plan`, unless it has a Ref."""
    if id(op) not in tables.with_refs:
        return op.row
    given = op.row
    rows = tables.rows
    row = {**shape.defaults, **given}
    for column, value in given.items():
        if type(value) is Ref:
            other = rows[value.table].get(value.key)
            row[column] = None if other is None else other[value.column]
    _complete(row, shape, op.table)
    return row


def _change(row: Row, changes: Mapping[str, Any], proposed: Row | None, shape: Layout) -> None:
    """Apply ``changes`` to ``row`` in place, every expression reading the old values (as SQL).

    An unknown column raises (KeyError or CoalesceFailed), as the statement would.
    """
    new: dict[str, Any] = {}
    known = shape.column_set
    not_null = shape.not_null
    for column, change in changes.items():
        if column not in known:
            raise CoalesceFailed(f"an unknown column {column!r}")
        kind = type(change)
        if kind is Add:
            current = row[change.column]
            value = None if current is None else current + change.amount
        elif kind is Minus:
            current = row[change.column]
            value = None if current is None or change.value is None else change.value - current
        elif change is NEW:
            assert proposed is not None
            value = proposed[column]
        else:
            value = change
        if value is None and column in not_null:
            raise CoalesceFailed(f"NULL in a NOT NULL column {column!r}")
        new[column] = value
    row.update(new)


def _check_columns(table: str, changes: Mapping[str, Any], shape: Layout) -> None:
    """Fail on an unknown column where no row is changed: the statement would fail anyway."""
    known = shape.column_set
    for column, change in changes.items():
        if column not in known or (type(change) in (Add, Minus) and change.column not in known):
            raise CoalesceFailed(f"an unknown column in {table}")


def _interpret(ops: Sequence[RowOp], tables: _Tables) -> None:
    rows = tables.rows
    dirty = tables.dirty
    layouts = tables.layouts
    with_refs = tables.with_refs
    for op in ops:
        kind = type(op)
        if kind is Insert:
            assert isinstance(op, Insert)
            table = op.table
            key = op.key
            table_rows = rows[table]
            if table_rows.get(key) is not None:
                raise CoalesceFailed(f"{table}: the key {key} exists")
            table_rows[key] = _full_row(op, layouts[table], tables) if with_refs else op.row
            dirty[table][key] = None
        elif kind is Update:
            assert isinstance(op, Update)
            table = op.table
            shape = layouts[table]
            old = rows[table].get(op.key)
            if old is None:
                _check_columns(table, op.changes, shape)
                continue
            when = op.when
            if when is not None:
                other = rows[when.table].get(when.key)
                if other is None or other[when.column] != when.value:
                    _check_columns(table, op.changes, shape)
                    continue
            _change(old, op.changes, None, shape)
            dirty[table][op.key] = None
        elif kind is Upsert:
            assert isinstance(op, Upsert)
            table = op.table
            shape = layouts[table]
            proposed = _full_row(op, shape, tables) if with_refs else op.row
            key = op.key
            table_rows = rows[table]
            old = table_rows.get(key)
            if old is None:
                _check_columns(table, op.changes, shape)
                table_rows[key] = proposed
            elif op.changes:
                _change(old, op.changes, proposed, shape)
                # (a DO UPDATE's expressions are checked by _change)
            else:
                continue  # DO NOTHING
            dirty[table][key] = None
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
    except Exception as exc:  # a malformed op: let the statements report it
        raise CoalesceFailed(f"{type(exc).__name__}: {exc}") from exc
    for table, keys in load.items():
        shape = state.layouts[table]
        try:
            found = yield LoadRows(physical[table], shape, keys)
        except Exception as exc:
            raise CoalesceFailed(str(exc)) from exc
        table_rows = state.rows[table]
        existed = state.existed[table]
        table_rows.update(dict.fromkeys(keys))
        columns = shape.columns
        key_at = shape.key_at
        for values in found:
            key = key_at(values)
            table_rows[key] = dict(zip(columns, values, strict=True))
            existed.add(key)
    try:
        _interpret(ops, state)
    except CoalesceFailed:
        raise
    except Exception as exc:  # an op the statements would reject in some other way
        raise CoalesceFailed(f"{type(exc).__name__}: {exc}") from exc
    writes: list[WriteRows] = []
    for table, keys_written in state.dirty.items():
        if not keys_written:
            continue
        shape = state.layouts[table]
        values_of = shape.values_of
        single = len(shape.key) == 1
        table_rows = state.rows[table]
        existed = state.existed[table]
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        deletes: list[tuple[Any, ...]] = []
        for key in keys_written:
            row = table_rows[key]
            if row is None:
                if key in existed:
                    deletes.append((key,) if single else key)
            elif key in existed:
                updates.append(values_of(row))
            else:
                inserts.append(values_of(row))
        # The tuples hold the values now: the dict rows need not stay
        # (memory is what bounds a chunk).
        table_rows.clear()
        if inserts or updates or deletes:
            writes.append(WriteRows(physical[table], shape, inserts, updates, deletes))
    if not writes:
        return
    try:
        yield WriteMany(tuple(writes))
    except Exception as exc:
        raise CoalesceFailed(str(exc)) from exc


def row_ops_only(ops: Sequence[Op | RowOp]) -> bool:
    """Whether an event's ops are all row operations (it can join a coalesced segment)."""
    return tuple not in map(type, ops)
