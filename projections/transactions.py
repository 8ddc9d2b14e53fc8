"""The views store's transactions, written once and run by each backend's driver.

Each transaction is a generator that yields requests (:class:`Execute`,
:class:`Fetch`, :class:`ApplyOps`) and receives their results; a driver runs it
inside one database transaction (SQLite in a worker thread, PostgreSQL with
asyncpg), commits when it returns and rolls back when it raises. A database
error is thrown back into the generator as :class:`OpError`, so the logic
that isolates a failing event lives here, once, for every backend.

Exactly once: a projection's checkpoint (``projection_state.position``) is
read and written in the same transaction as its rows, under the store's write
lock. Events at or below the checkpoint are skipped, so a second runner that
lost the race applies nothing twice; the checkpoint update is a
compare-and-set on the position read.

Size: one module (~590 lines) because every transaction shares the request
vocabulary and the checkpoint rules above; ``apply_batch`` and its coalesced
or folded first try belong together (the fallback must run exactly the same
events).
"""

from __future__ import annotations

from collections.abc import Container, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .coalesce import (
    CoalesceFailed,
    LoadRows,
    WriteMany,
    WriteRows,
    coalesce_segment,
    row_ops_only,
)
from .definition import Op, Projection
from .fold import Folder, FoldFailed, takes_statements
from .requests import ApplyOps, Execute, ExecuteMany, Fetch, Script
from .row_ops import RowOp, to_sql_ops

__all__ = [
    "STATE_DDL",
    "ApplyOps",
    "ApplyOutcome",
    "EventWork",
    "Execute",
    "ExecuteMany",
    "Fetch",
    "LoadRows",
    "OpError",
    "ProjectionState",
    "ProjectionWork",
    "RetryWithSavepoints",
    "Script",
    "Tx",
    "WriteMany",
    "WriteRows",
    "abort_rebuild",
    "apply_batch",
    "begin_rebuild",
    "ensure_indexes",
    "ensure_projection",
    "ensure_projections",
    "physical_name",
    "read_faults",
    "read_meta",
    "read_states",
    "reset_all",
    "swap_in_rebuild",
    "write_meta",
]

T = TypeVar("T")


Request = Execute | Script | Fetch | ApplyOps | LoadRows | WriteMany | ExecuteMany
Tx = Generator[Request, Any, T]
"""A transaction body: yields requests, returns its result."""


class OpError(Exception):
    """A database error, as the driver throws it back into a transaction."""


STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_state ("
    "name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, generation INTEGER NOT NULL, "
    "position BIGINT NOT NULL, status TEXT NOT NULL, error TEXT, error_position BIGINT, "
    "skipped BIGINT NOT NULL DEFAULT 0, updated_at_us BIGINT NOT NULL, "
    "pending_version INTEGER, pending_generation INTEGER, pending_position BIGINT, "
    "pending_skipped BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS views_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
    # Events a projection could not apply (and went past): one row each, per generation.
    "CREATE TABLE IF NOT EXISTS projection_faults (name TEXT NOT NULL, generation INTEGER NOT "
    "NULL, position BIGINT NOT NULL, reason TEXT NOT NULL, recorded_at_us BIGINT NOT NULL, "
    "PRIMARY KEY (name, generation, position))",
)

_STATE_COLUMNS = (
    "name, version, generation, position, status, error, error_position, skipped, "
    "updated_at_us, pending_version, pending_generation, pending_position, pending_skipped"
)


@dataclass(slots=True)
class ProjectionState:
    """One row of ``projection_state``: a projection's live generation and any rebuild."""

    name: str
    version: int
    generation: int
    position: int
    status: str
    error: str | None
    error_position: int | None
    skipped: int
    updated_at_us: int
    pending_version: int | None
    pending_generation: int | None
    pending_position: int | None
    pending_skipped: int


def physical_name(table: str, generation: int) -> str:
    """The physical table behind view ``table`` in ``generation``."""
    return f"{table}_g{generation}"


def _tables(projection: Projection, generation: int) -> tuple[tuple[str, str], ...]:
    return tuple((t, physical_name(t, generation)) for t in projection.tables)


def read_states() -> Tx[dict[str, ProjectionState]]:
    """Every projection's state."""
    rows = yield Fetch(f"SELECT {_STATE_COLUMNS} FROM projection_state")
    return {row[0]: ProjectionState(*row) for row in rows}


def _state(name: str) -> Tx[ProjectionState | None]:
    rows = yield Fetch(f"SELECT {_STATE_COLUMNS} FROM projection_state WHERE name = ?", (name,))
    return ProjectionState(*rows[0]) if rows else None


def read_meta() -> Tx[dict[str, str]]:
    """The views store's own facts (its schema version, the log it belongs to)."""
    rows = yield Fetch("SELECT key, value FROM views_meta")
    return {str(k): str(v) for k, v in rows}


def write_meta(values: dict[str, str]) -> Tx[None]:
    """Record facts about the views store."""
    for key, value in values.items():
        yield Execute(
            "INSERT INTO views_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _forget_faults(projection: Projection, generation: int) -> Tx[None]:
    yield Execute(
        "DELETE FROM projection_faults WHERE name = ? AND generation = ?",
        (projection.name, generation),
    )


def read_faults() -> Tx[list[tuple[str, int, str, int]]]:
    """The events each projection's live generation could not apply, in log order.

    Rows of ``(name, position, reason, recorded_at_us)``.
    """
    rows = yield Fetch(
        "SELECT f.name, f.position, f.reason, f.recorded_at_us FROM projection_faults f "
        "JOIN projection_state s ON s.name = f.name AND s.generation = f.generation "
        "ORDER BY f.position, f.name"
    )
    return [(str(r[0]), int(r[1]), str(r[2]), int(r[3])) for r in rows]


def _create_generation_ddl(projection: Projection, generation: int) -> list[str]:
    """Fresh tables for a generation, WITHOUT their secondary indexes.

    A new generation is about to be bulk loaded (a first catch-up, a rebuild):
    building each index once over the loaded rows (:func:`ensure_indexes`)
    costs far less than maintaining it row by row, at random UUID keys, while
    loading. The primary keys exist from the start: the handlers' updates find
    their rows through them.
    """
    statements = _drop_retired_ddl(projection, generation)
    for table, definition in projection.tables.items():
        name = physical_name(table, generation)
        statements.append(f"DROP TABLE IF EXISTS {name}")
        statements += definition.create_statements(name, indexes=False)
    return statements


def _drop_retired_ddl(projection: Projection, generation: int) -> list[str]:
    # An earlier version's generation of the same number may have them.
    return [
        f"DROP TABLE IF EXISTS {physical_name(table, generation)}" for table in projection.retired
    ]


def _index_ddl(projection: Projection, generation: int) -> list[str]:
    return [
        statement
        for table, definition in projection.tables.items()
        for statement in definition.index_statements(physical_name(table, generation))
    ]


def _drop_generation_ddl(projection: Projection, generation: int) -> list[str]:
    return [
        f"DROP TABLE IF EXISTS {physical_name(table, generation)}" for table in projection.tables
    ] + _drop_retired_ddl(projection, generation)


def _point_views_ddl(projection: Projection, generation: int) -> list[str]:
    """Make each logical view name show ``generation``: the swap readers see atomically."""
    statements: list[str] = []
    for table in projection.tables:
        statements.append(f"DROP VIEW IF EXISTS {table}")
        physical = physical_name(table, generation)
        statements.append(f"CREATE VIEW {table} AS SELECT * FROM {physical}")
    # An earlier version's logical view of a table this one retired: on
    # PostgreSQL it would keep the old generation's table from being dropped.
    statements += [
        f"DROP VIEW IF EXISTS {table}"
        for table in projection.retired
        if table not in projection.derived
    ]
    names = dict(_tables(projection, generation))
    for view, select in projection.derived.items():
        # Its SELECT names the generation's tables directly: no view on a view.
        statements.append(f"DROP VIEW IF EXISTS {view}")
        statements.append(f"CREATE VIEW {view} AS {select.format_map(names)}")
    return statements


def _script(statements: Sequence[str]) -> Tx[None]:
    if statements:
        yield Script(tuple(statements))


def ensure_indexes(projections: Sequence[Projection]) -> Tx[None]:
    """Build the live generations' secondary indexes if a bulk load left them out.

    The runner calls it once it has caught up, for every projection at once
    (one transaction, one round trip for the DDL); each index that exists is a
    no-op.
    """
    states = yield from read_states()
    statements: list[str] = []
    for projection in projections:
        state = states.get(projection.name)
        if state is not None and state.version == projection.version:
            statements += _index_ddl(projection, state.generation)
    yield from _script(statements)


def ensure_projection(projection: Projection, now_us: int) -> Tx[str]:
    """Create a projection seen for the first time; say whether it needs a rebuild.

    Returns ``"created"``, ``"current"``, or ``"outdated"`` (its stored version
    differs from the code's, or a rebuild was left half done).
    """
    actions = yield from ensure_projections([projection], now_us)
    return actions[projection.name]


def ensure_projections(projections: Sequence[Projection], now_us: int) -> Tx[dict[str, str]]:
    """:func:`ensure_projection` for several projections in one transaction, by name.

    The tables and views of every new one are created by one request (one
    round trip on PostgreSQL).
    """
    states = yield from read_states()
    actions: dict[str, str] = {}
    created: list[Projection] = []
    for projection in projections:
        state = states.get(projection.name)
        if state is None:
            created.append(projection)
            actions[projection.name] = "created"
        elif state.version != projection.version or state.pending_generation is not None:
            actions[projection.name] = "outdated"
        else:
            actions[projection.name] = "current"
    statements: list[str] = []
    for projection in created:
        yield from _forget_faults(projection, 1)
        statements += _create_generation_ddl(projection, 1) + _point_views_ddl(projection, 1)
    yield from _script(statements)
    for projection in created:
        yield Execute(
            f"INSERT INTO projection_state ({_STATE_COLUMNS}) "
            "VALUES (?, ?, 1, 0, 'live', NULL, NULL, 0, ?, NULL, NULL, NULL, 0)",
            (projection.name, projection.version, now_us),
        )
    return actions


def begin_rebuild(projection: Projection) -> Tx[ProjectionState]:
    """Create the green generation beside the live one, or resume one of this version."""
    state = yield from _state(projection.name)
    assert state is not None, "ensure_projection first"
    if state.pending_generation is not None:
        if state.pending_version == projection.version:
            return state  # resume: its rows and position were committed together
        yield from _forget_faults(projection, state.pending_generation)
        dropped = _drop_generation_ddl(projection, state.pending_generation)
    else:
        dropped = []
    generation = max(state.generation, state.pending_generation or 0) + 1
    yield from _forget_faults(projection, generation)
    yield from _script(dropped + _create_generation_ddl(projection, generation))
    yield Execute(
        "UPDATE projection_state SET pending_version = ?, pending_generation = ?, "
        "pending_position = 0, pending_skipped = 0 WHERE name = ?",
        (projection.version, generation, projection.name),
    )
    new = yield from _state(projection.name)
    assert new is not None
    return new


def abort_rebuild(projection: Projection) -> Tx[None]:
    """Drop a green generation that cannot be finished; the live one stays as it was."""
    state = yield from _state(projection.name)
    if state is not None and state.pending_generation is not None:
        yield from _forget_faults(projection, state.pending_generation)
        yield from _script(_drop_generation_ddl(projection, state.pending_generation))
        yield Execute(
            "UPDATE projection_state SET pending_version = NULL, pending_generation = NULL, "
            "pending_position = NULL, pending_skipped = 0 WHERE name = ?",
            (projection.name,),
        )


def swap_in_rebuild(projection: Projection, now_us: int, generation: int | None = None) -> Tx[bool]:
    """Swap the green generation in, in this one transaction; False if live got ahead of it.

    Only a pending generation of this projection's version is swapped in, and
    with ``generation`` only that one: a generation another process started
    for another version is never taken for ours. Readers see the old
    generation until the commit and the new one after it: never an empty or
    half-built view.
    """
    state = yield from _state(projection.name)
    if state is None or state.pending_generation is None or state.pending_position is None:
        return False
    if state.pending_version != projection.version or generation not in (
        None,
        state.pending_generation,
    ):
        return False
    if state.status == "live" and state.position > state.pending_position:
        return False  # the live runner applied events green has not seen yet
    # Green was bulk loaded without its secondary indexes: build them before
    # readers see it, in the swap's own transaction.
    yield from _forget_faults(projection, state.generation)
    yield from _script(
        _index_ddl(projection, state.pending_generation)
        + _point_views_ddl(projection, state.pending_generation)
        + _drop_generation_ddl(projection, state.generation)
    )
    yield Execute(
        "UPDATE projection_state SET version = ?, generation = ?, position = ?, status = 'live', "
        "error = NULL, error_position = NULL, skipped = ?, updated_at_us = ?, "
        "pending_version = NULL, pending_generation = NULL, pending_position = NULL, "
        "pending_skipped = 0 WHERE name = ?",
        (
            state.pending_version,
            state.pending_generation,
            state.pending_position,
            state.pending_skipped,
            now_us,
            projection.name,
        ),
    )
    return True


def reset_all(projections: Sequence[Projection]) -> Tx[None]:
    """Forget every projection (views of another log, or an unreadable views store)."""
    states = yield from read_states()
    statements: list[str] = []
    for projection in projections:
        views = {*projection.derived, *projection.tables, *projection.retired}
        statements += [f"DROP VIEW IF EXISTS {view}" for view in sorted(views)]
        state = states.get(projection.name)
        if state is not None:
            statements += _drop_generation_ddl(projection, state.generation)
            if state.pending_generation is not None:
                statements += _drop_generation_ddl(projection, state.pending_generation)
    yield from _script(statements)
    yield Execute("DELETE FROM projection_state")
    yield Execute("DELETE FROM projection_faults")


@dataclass(slots=True)
class EventWork:
    """One event's work for one projection: its ops, or its handler error, or a skip."""

    position: int
    ops: Sequence[Op | RowOp] = ()
    error: str | None = None
    skipped: bool = False


@dataclass(slots=True)
class ProjectionWork:
    """A batch's work for one projection: the events it handles between first and last."""

    projection: Projection
    events: list[EventWork] = field(default_factory=list)
    #: The fold that applies the events in ``folded`` (:mod:`projections.fold`), or
    #: None. ``events`` then holds only the events that have no ops (skipped, or
    #: with an error).
    fold: Folder | None = None
    #: The events the fold takes, in log order: (stored row, decoded event).
    folded: list[tuple[tuple[Any, ...], Any]] = field(default_factory=list)


@dataclass(slots=True)
class ApplyOutcome:
    """Where each projection stands after a batch."""

    positions: dict[str, int] = field(default_factory=dict)
    failed: dict[str, tuple[int, str]] = field(default_factory=dict)
    behind: dict[str, int] = field(default_factory=dict)
    #: Events each projection could not apply in this batch: (position, reason).
    faults: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: The (projection, generation) pairs whose secondary indexes this batch built.
    indexed: set[tuple[str, int]] = field(default_factory=set)


class RetryWithSavepoints(Exception):
    """A batch applied without savepoints hit a SQL error: roll it back, redo it with them."""


def _apply_raw(events: list[list[Op]], tables: tuple[tuple[str, str], ...]) -> Tx[None]:
    result = yield ApplyOps(events, tables, exact=False)
    if result is not None:
        raise CoalesceFailed(result[1])


def _apply_coalesced(
    events: Sequence[EventWork], projection: Projection, tables: tuple[tuple[str, str], ...]
) -> Tx[None]:
    """A batch's events with their row ops coalesced per row (:mod:`projections.coalesce`).

    Consecutive events whose ops are all row ops form a segment, applied
    coalesced; an event with a SQL op (a delete by run, OpenLineage) is a
    barrier: the segment before it is written first, then its statements run
    (consecutive ones together), and the next segment loads its rows afresh.
    Raises CoalesceFailed on any error.
    """
    definitions = projection.tables
    physical = dict(tables)
    segment: list[RowOp] = []
    raw: list[list[Op]] = []
    for event in events:
        ops = event.ops
        if row_ops_only(ops):
            if raw:
                yield from _apply_raw(raw, tables)
                raw = []
            segment.extend(ops)  # type: ignore[arg-type]
        else:
            if segment:
                yield from coalesce_segment(segment, definitions, physical)
                segment = []
            raw.append(to_sql_ops(ops, definitions))
    if raw:
        yield from _apply_raw(raw, tables)
    if segment:
        yield from coalesce_segment(segment, definitions, physical)


def apply_batch(
    work: Sequence[ProjectionWork],
    first: int,
    last: int,
    *,
    pending: bool,
    now_us: int,
    savepoints: bool = False,
    coalesce: bool = False,
    indexed: Container[tuple[str, int]] = frozenset(),
) -> Tx[ApplyOutcome]:
    """Apply events ``first..last`` to each projection, exactly once, checkpoint included.

    ``pending`` targets the green generation of a rebuild instead of the live one.
    A projection whose checkpoint is already at ``last`` or beyond (another
    runner did it) is left alone; one whose checkpoint is before ``first - 1``
    cannot take this batch without skipping events, and is reported ``behind``.

    An event a projection cannot apply (its handler raised, it cannot be
    decoded, or one of its ops fails in SQL) never stops the projection: its
    partial ops are undone, it is recorded in ``projection_faults`` (position,
    projection, reason) and the projection goes on with the next event.

    Savepoints isolate one event's SQL error from the rest, but cost about a
    fifth of a catch-up; so a batch first runs without them, and a SQL error
    raises RetryWithSavepoints: the caller rolls back and runs the batch again
    with ``savepoints=True``, which pins each failing event.

    The first try (``savepoints=False``) is coalesced if ``coalesce``: each
    row is loaded, folded in memory through the chunk's row ops and written
    once (:mod:`projections.coalesce`). Any error there is
    RetryWithSavepoints too; the retry runs each op as its SQL statement.
    ``coalesce=False`` runs the statements without savepoints first instead
    (the reference the coalesced path is tested against).

    A projection whose work carries a fold (``ProjectionWork.fold``: SQLite's
    default for the run lifecycle projections, :mod:`projections.fold`) is
    folded at the first try instead; any error there is RetryWithSavepoints
    as well, and the runner prepares the retry's ops event by event.

    A generation bulk loaded without its secondary indexes (a first catch-up, a
    rebuild) gets them before any of its events is applied as SQL statements
    (OpenLineage events, a retry, a projection that is not folded): those
    statements find rows by secondary keys, and without the indexes each one
    scanned its table (a first catch-up of 5,000 OpenLineage events took 34 s).
    ``indexed`` holds the (projection, generation) pairs known to have them;
    the pairs this batch indexed are in the outcome's ``indexed``.
    """
    outcome = ApplyOutcome()
    position_column = "pending_position" if pending else "position"
    skipped_column = "pending_skipped" if pending else "skipped"
    for item in work:
        name = item.projection.name
        state = yield from _state(name)
        if state is None:
            continue
        generation = state.pending_generation if pending else state.generation
        position = state.pending_position if pending else state.position
        if generation is None or position is None or (not pending and state.status != "live"):
            continue
        # Tables of another version (a process running other code rebuilt them):
        # this code's ops must not go into them.
        if (state.pending_version if pending else state.version) != item.projection.version:
            continue
        if position >= last:
            outcome.positions[name] = position
            continue
        if position < first - 1:
            outcome.behind[name] = position
            continue
        candidates = [e for e in item.events if e.position > position]
        faults = [(e.position, e.error) for e in candidates if e.error is not None]
        events = [e for e in candidates if e.error is None]
        tables = _tables(item.projection, generation)
        folded = item.fold is not None and not savepoints
        if (name, generation) not in indexed and (
            (folded and takes_statements(item.projection, item.folded))
            or (not folded and not (coalesce and not savepoints) and events)
        ):
            yield from _script(_index_ddl(item.projection, generation))
            outcome.indexed.add((name, generation))
        if folded:
            assert item.fold is not None
            batch = item.folded
            if batch and batch[0][0][0] <= position:
                batch = [e for e in batch if e[0][0] > position]
            try:
                yield from item.fold(batch, item.projection, tables)
            except FoldFailed as exc:
                raise RetryWithSavepoints(name) from exc
            # Applied: the events need not stay while the next projection's are.
            item.folded = []
            del batch
        elif coalesce and not savepoints:
            try:
                yield from _apply_coalesced(events, item.projection, tables)
            except CoalesceFailed as exc:
                raise RetryWithSavepoints(name) from exc
            # Applied: their ops need not stay while the next projection's are
            # (a retry prepares the chunk again from its rows).
            for event in events:
                event.ops = ()
        definitions = item.projection.tables
        remaining = (
            [] if folded or (coalesce and not savepoints) else [(e.position, e.ops) for e in events]
        )
        while remaining:
            if savepoints:
                yield Execute("SAVEPOINT apply_batch")
            result = yield ApplyOps(
                [ops for _, ops in remaining], tables, exact=savepoints, definitions=definitions
            )
            if result is None:
                if savepoints:
                    yield Execute("RELEASE SAVEPOINT apply_batch")
                break
            if not savepoints:
                raise RetryWithSavepoints(name)
            index, message = result
            # Undo the failing event's partial ops, keep the events before it, go on.
            yield Execute("ROLLBACK TO SAVEPOINT apply_batch")
            if index:
                again = yield ApplyOps(
                    [ops for _, ops in remaining[:index]], tables, definitions=definitions
                )
                if again is not None:
                    raise OpError(
                        f"events before position {remaining[index][0]} failed on replay: {again[1]}"
                    )
            yield Execute("RELEASE SAVEPOINT apply_batch")
            faults.append((remaining[index][0], f"SQL error: {message}"))
            remaining = remaining[index + 1 :]
        for fault_position, reason in sorted(faults):
            yield Execute(
                "INSERT INTO projection_faults (name, generation, position, reason, "
                "recorded_at_us) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name, generation, position) DO NOTHING",
                (name, generation, fault_position, reason, now_us),
            )
        skipped = sum(1 for e in events if e.skipped)
        changed = yield Execute(
            f"UPDATE projection_state SET {position_column} = ?, "
            f"{skipped_column} = {skipped_column} + ?, updated_at_us = ? "
            f"WHERE name = ? AND {position_column} = ?",
            (last, skipped, now_us, name, position),
        )
        if changed != 1:  # impossible under the write lock; refuse rather than double-apply
            raise OpError(f"checkpoint of {name!r} moved during the transaction")
        if faults:
            outcome.faults[name] = sorted(faults)
        outcome.positions[name] = last
    return outcome
