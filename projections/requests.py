"""The requests a views transaction yields to its driver (:mod:`projections.transactions`).

Apart from the transactions so that what they run can yield them too without
importing the transactions: the fold of a chunk (:mod:`projections.fold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .definition import Op, Table
    from .row_ops import RowOp

__all__ = ["ApplyOps", "BulkRows", "Execute", "ExecuteMany", "Fetch", "Script"]


class Execute(NamedTuple):
    """Run one statement; the result is its row count."""

    sql: str
    params: tuple[Any, ...] = ()


class Script(NamedTuple):
    """Run statements without parameters (DDL), in order; the result is None.

    A driver may send them in one round trip (PostgreSQL's simple query
    protocol takes several statements at once): one statement a round trip,
    a first open's tables, views and indexes took 0.15 to 0.45 s of a
    20,000-event first catch-up on PostgreSQL (1 to 2 s; the most on a busy
    machine).
    """

    statements: tuple[str, ...]


class Fetch(NamedTuple):
    """Run one query; the result is its rows as tuples."""

    sql: str
    params: tuple[Any, ...] = ()


class ApplyOps(NamedTuple):
    """Run each event's ops in order, rendering ``{table}`` names with ``tables``.

    The result is None, or ``(index, message)`` of the first event whose ops
    raised; the driver stops there (the caller rolls back to a savepoint).
    """

    events: Sequence[Sequence[Op | RowOp]]
    tables: tuple[tuple[str, str], ...]
    #: False: the index of a failing event is not needed (the caller redoes the
    #: batch with savepoints on any error), so a driver may send the ops in bulk.
    exact: bool = True
    #: The projection's tables, to render row operations to their statements
    #: (one at a time, as they run: a batch's rendered statements never all
    #: sit in memory at once).
    definitions: Mapping[str, Table] | None = None


class BulkRows(NamedTuple):
    """What an :class:`ExecuteMany`'s statement does, for a driver that sends all its rows at once.

    A driver that pays a round trip per row (PostgreSQL) sends the rows as one
    set-based statement built from this instead of running ``sql`` once per
    row; SQLite runs ``sql`` with ``executemany``, which costs no round trips.
    """

    #: The physical table.
    table: str
    #: The column each parameter sets, in parameter order.
    columns: tuple[str, ...]
    #: Their PostgreSQL types (``text``, ``int8``...), from the table's definition.
    types: tuple[str, ...]
    #: Parameter indexes of the key that tells which row a tuple writes: tuples
    #: sharing a key must be applied one after the other, in order (a set-based
    #: upsert cannot touch one row twice). Empty: no tuple can share a row with
    #: another without failing either way (a plain insert).
    key: tuple[int, ...] = ()
    #: ``UPDATE`` the other columns of the row whose ``key`` columns match (else ``INSERT``).
    update: bool = False
    #: An insert's ``ON CONFLICT ...`` clause, exactly as in ``sql``.
    conflict: str = ""


class ExecuteMany(NamedTuple):
    """Run one statement (table names already physical) once per parameter tuple, in order.

    The result is None; a failing statement is the transaction's error (the
    driver throws it back in).
    """

    sql: str
    rows: list[tuple[Any, ...]]
    #: The statement's shape, for a driver that sends the rows in bulk (None: it cannot).
    bulk: BulkRows | None = None
