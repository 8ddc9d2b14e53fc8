"""Folding a chunk of run lifecycle events straight into rows: a batch's first try.

The per-event path turns each event into row operations, renders each to its
SQL statement and runs the statements one by one: on SQLite that is about
three statements and some thirty microseconds of Python an event. For the two
projections a lifecycle log is made of (``runs`` and ``artifacts``), a chunk's
first try instead folds the decoded events directly into rows, in plain lists
and dicts, with no op objects, and writes them with a few ``executemany``:

- rows a chunk inserts and then updates (a run, its counts and its end; a
  step and its end; an artifact name's version counter) are kept in memory as
  lists in column order, changed in place as each event comes, and written
  once: new rows by ``INSERT``, rows that existed before the chunk by
  ``UPDATE``. A row the chunk updates without having inserted it is read when
  first needed (one query by primary key: the database still holds its state
  before the chunk, since nothing is written until the end);
- rows of tables that no other statement of the projection reads (metadata,
  consumers, stack descriptions...) are written by the very
  statement the handler's op renders to, one ``executemany`` per table in log
  order: their relative order across tables cannot change what they store.

Everything mirrors the handlers of the projection's version
(:data:`FOLDED_VERSIONS`); an event the fold does not model (a deletion,
OpenLineage) flushes the rows folded so far and runs its own statements, and
the fold goes on from the database's state. Anything unexpected (a handler
that would raise, a duplicate key, any SQL error) raises :class:`FoldFailed`:
the runner rolls the transaction back and applies the chunk again event by
event with savepoints, which records the failing event as a fault. So the fold
only has to agree with the statements on success, and a property test checks
that it does (tests/test_fold_property.py).

Which views stores fold: those with ``folds = True`` (SQLite and PostgreSQL).
Each ``executemany`` carries its shape (:class:`~projections.requests.BulkRows`),
from which PostgreSQL, where a statement a row would cost a round trip each,
builds one set-based statement for all the rows. A projection folds only if
it is exactly one of the classes here at the version its fold mirrors, with
its own handlers (a subclass or a patched handler takes the per-event path).

Size: one module (~520 lines) for the two folds, because they share their
requests, their barrier and their failure rule, and each reads best beside the
handlers it mirrors, one branch per event type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from typing import Any

import msgspec

from eventstore import (
    ArtifactConsumed,
    ArtifactProduced,
    MetadataLogged,
    OpenLineageReceived,
    RunFinished,
    RunStackDescribed,
    RunStarted,
    StepFinished,
    StepStarted,
    us_from_datetime,
)
from eventstore.backend import RowTuple
from eventstore.envelope import recorded_event

from .artifacts import ArtifactsProjection
from .definition import EventContext, Projection
from .openlineage import REFRESH_RUNS, facts_of, refresh_runs, run_ops, run_ops_deferred
from .openlineage_artifacts import artifact_ops, artifact_ops_deferred, normalise_artifacts
from .requests import ApplyOps, BulkRows, ExecuteMany, Fetch
from .row_ops import layout, to_sql_ops
from .runs import STEP_STATUSES, RunsProjection

__all__ = [
    "FOLDED_VERSIONS",
    "FoldFailed",
    "Folder",
    "folder_for",
]


class FoldFailed(Exception):
    """The chunk cannot be applied folded: redo it event by event."""


Fold = Generator[Any, Any, None]
FoldEvent = tuple[RowTuple, Any]
"""An event to fold: its stored row and its decoded event."""
Folder = Callable[[Sequence[FoldEvent], Projection, tuple[tuple[str, str], ...]], Fold]
"""A fold: a chunk's events (those after the checkpoint that the projection handles,
in log order), the projection, and its tables' physical names."""

#: The projection version each fold mirrors: another version takes the per-event path.
FOLDED_VERSIONS: dict[type[Projection], int] = {RunsProjection: 7, ArtifactsProjection: 5}

_MISSING: Any = object()
# ``uuid_text`` and ``to_json`` without their Python frames (a few calls an event):
# ``_uuid(u)`` is ``uuid_text(u)``, ``_json(v).decode()`` is ``to_json(v)``.
_uuid = msgspec.to_builtins
_json = msgspec.json.Encoder().encode


def _barrier(
    row: RowTuple, event: Any, projection: Projection, tables: tuple[tuple[str, str], ...]
) -> Fold:
    """Run the statements of an event the fold does not model (after a flush)."""
    recorded = recorded_event(row, event)
    try:
        ops = projection.ops(recorded, EventContext.of(recorded)) or ()
        statements = to_sql_ops(ops, projection.tables)
    except Exception as exc:  # the per-event path records it as a fault
        raise FoldFailed(f"{type(exc).__name__}: {exc}") from exc
    if statements:
        result = yield ApplyOps([statements], tables, exact=False)
        if result is not None:
            raise FoldFailed(result[1])


#: The OpenLineage handler of each folded projection, its variant that leaves the
#: rewrite of the run tree's derived rows for later, and that rewrite for up to
#: REFRESH_RUNS runs' trees.
_DEFERRED: dict[
    type[Projection], tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]
] = {
    RunsProjection: (run_ops, run_ops_deferred, refresh_runs),
    ArtifactsProjection: (artifact_ops, artifact_ops_deferred, normalise_artifacts),
}
#: OpenLineage events whose statements a fold sends together.
_OPENLINEAGE_BATCH = 256


class _OpenLineageEvents:
    """The OpenLineage events of a fold: each tree's derived rows rewritten once.

    Run one by one (:func:`_barrier`), each event of a DAG run rewrote its
    whole tree's derived rows (the root's run row, its placeholders' steps):
    about a third of an event's statements. Here each event's own statements
    run as they come, in batches, with its run marked ``dirty``; the trees they
    touched are rewritten together when the fold reaches an event of another
    kind, or the chunk's end (:meth:`settle`). Each tree's rewrite reads only
    that tree's merged state, so the rows are those the per-event path writes.
    """

    def __init__(self, projection: Projection, tables: tuple[tuple[str, str], ...]) -> None:
        self._projection = projection
        self._tables = tables
        handler, deferred, refresh = _DEFERRED.get(type(projection), (None, None, None))
        # A projection whose handler differs (a patched instance) keeps the barrier.
        if projection._handlers.get(OpenLineageReceived) is not handler or handler is None:
            deferred = refresh = None
        self._deferred = deferred
        self._refresh = refresh
        self._statements: list[Sequence[Any]] = []
        self._runs: dict[str, None] = {}
        #: Whether statements or tree rewrites wait for :meth:`settle` (an
        #: attribute, not a property: the fold reads it once an event).
        self.pending = False

    def takes(self, kind: type) -> bool:
        """Whether events of ``kind`` go through :meth:`add`."""
        return kind is OpenLineageReceived and self._deferred is not None

    def add(self, row: RowTuple, event: Any) -> Fold:
        """Take one event: its statements, its run's tree to rewrite later."""
        assert self._deferred is not None
        recorded = recorded_event(row, event)
        try:
            ops = list(self._deferred(event, EventContext.of(recorded)))
            statements = to_sql_ops(ops, self._projection.tables)
            facts = facts_of(event)
        except Exception as exc:  # the per-event path records it as a fault
            raise FoldFailed(f"{type(exc).__name__}: {exc}") from exc
        if statements:
            self._statements.append(statements)
        if facts is not None:
            self._runs[facts.run_id] = None
        self.pending = True
        if len(self._statements) >= _OPENLINEAGE_BATCH:
            yield from self._send()

    def _send(self) -> Fold:
        if self._statements:
            result = yield ApplyOps(self._statements, self._tables, exact=False)
            self._statements = []
            if result is not None:
                raise FoldFailed(result[1])

    def settle(self) -> Fold:
        """Run what waits: the events' statements, then their trees' rewrites."""
        yield from self._send()
        runs = list(self._runs)
        self._runs.clear()
        self.pending = False
        if not runs:
            return
        assert self._refresh is not None
        rewrites = [
            to_sql_ops(
                list(self._refresh(runs[start : start + REFRESH_RUNS])), self._projection.tables
            )
            for start in range(0, len(runs), REFRESH_RUNS)
        ]
        result = yield ApplyOps(rewrites, self._tables, exact=False)
        if result is not None:
            raise FoldFailed(result[1])


Write = tuple[str, BulkRows]
"""A statement the fold runs once per row, with its shape for drivers that send rows in bulk."""

_CONFLICT_TARGET = re.compile(r"ON CONFLICT \(([^)]*)\)")


def _names(columns: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in columns.split(","))


def _types(projection: Projection, table: str, columns: Sequence[str]) -> tuple[str, ...]:
    """The PostgreSQL types of ``columns`` of the projection's ``table``."""
    shape = layout(projection.tables[table])
    return tuple(shape.pg_arrays[shape.columns.index(c)].removesuffix("[]") for c in columns)


def _insert(
    projection: Projection, names: dict[str, str], table: str, columns: str, conflict: str = ""
) -> Write:
    """``INSERT INTO table (columns) VALUES (?, ...) [conflict]`` and its shape."""
    physical, listed = names[table], _names(columns)
    sql = f"INSERT INTO {physical} ({', '.join(listed)}) VALUES ({_marks(columns)})"
    key: tuple[int, ...] = ()
    if conflict:
        sql = f"{sql} {conflict}"
        target = _CONFLICT_TARGET.match(conflict)
        assert target is not None, conflict
        key = tuple(listed.index(c) for c in _names(target.group(1)))
    return sql, BulkRows(physical, listed, _types(projection, table, listed), key, False, conflict)


def _update(projection: Projection, names: dict[str, str], table: str, columns: str) -> Write:
    """``UPDATE table SET (the other columns) WHERE first = ?``: rows as :func:`_as_update`."""
    physical, listed = names[table], _names(columns)
    key, rest = listed[0], listed[1:]
    sql = f"UPDATE {physical} SET {', '.join(f'{c} = ?' for c in rest)} WHERE {key} = ?"
    order = (*rest, key)
    return sql, BulkRows(physical, order, _types(projection, table, order), (len(rest),), True)


def _many(write: Write, rows: list[tuple[Any, ...]]) -> Fold:
    """An executemany; a failing statement (an OpError thrown in) is a FoldFailed."""
    if not rows:
        return
    try:
        yield ExecuteMany(write[0], rows, write[1])
    except Exception as exc:
        raise FoldFailed(str(exc)) from exc


def _fetch_one(sql: str, key: Any) -> Generator[Any, Any, Any]:
    try:
        rows = yield Fetch(sql, (key,))
    except Exception as exc:
        raise FoldFailed(str(exc)) from exc
    return list(rows[0]) if rows else None


# -- runs -----------------------------------------------------------------------------

_RUN_COLUMNS = (
    "run_id, pipeline_name, run_name, stack_id, orchestrator_run_id, config, tags, status, "
    "started_at_us, finished_at_us, duration_us, error, "
    + ", ".join(f"steps_{s}" for s in STEP_STATUSES)
    + ", position"
)
_STEP_COLUMNS = (
    "step_run_id, run_id, step_name, status, started_at_us, finished_at_us, duration_us, "
    "parameters, cache_key, upstream_steps, error, position"
)
# Column indexes in those orders.
_R_STATUS, _R_STARTED, _R_FINISHED, _R_DURATION, _R_ERROR = 7, 8, 9, 10, 11
_R_RUNNING = 12
_R_COUNT = {f"steps_{s}": 12 + n for n, s in enumerate(STEP_STATUSES)}
_S_STATUS, _S_STARTED, _S_FINISHED, _S_DURATION, _S_ERROR = 3, 4, 5, 6, 10


def _marks(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


def _as_update(row: list[Any]) -> tuple[Any, ...]:
    """A row's values for :func:`_update`: its columns after the key, then the key."""
    return (*row[1:], row[0])


def fold_runs(
    events: Sequence[FoldEvent], projection: Projection, tables: tuple[tuple[str, str], ...]
) -> Fold:
    """The ``runs`` projection (version 7) folded over a chunk; see the module docstring."""
    names = dict(tables)
    runs_t, steps_t = names["runs"], names["steps"]
    load_run = f"SELECT {_RUN_COLUMNS} FROM {runs_t} WHERE run_id = ?"
    load_step = f"SELECT {_STEP_COLUMNS} FROM {steps_t} WHERE step_run_id = ?"
    upserts = {
        "run_metadata": _insert(
            projection,
            names,
            "run_metadata",
            "run_id, step_run_id, key, value, position",
            "ON CONFLICT (run_id, step_run_id, key) "
            "DO UPDATE SET value = excluded.value, position = excluded.position",
        ),
        "described_stacks": _insert(
            projection,
            names,
            "described_stacks",
            "stack_id, name, components, home, position",
            "ON CONFLICT (stack_id) DO UPDATE SET name = excluded.name, "
            "components = excluded.components, home = excluded.home, position = excluded.position",
        ),
    }
    writes = {
        "runs_new": _insert(projection, names, "runs", _RUN_COLUMNS),
        "runs_old": _update(projection, names, "runs", _RUN_COLUMNS),
        "steps_new": _insert(projection, names, "steps", _STEP_COLUMNS),
        "steps_old": _update(projection, names, "steps", _STEP_COLUMNS),
    }
    # Per table: key -> row (a list in column order), or None once known absent.
    runs: dict[str, list[Any] | None] = {}
    steps: dict[str, list[Any] | None] = {}
    # Keys whose row existed before the chunk (loaded) and changed since.
    runs_changed: dict[str, None] = {}
    steps_changed: dict[str, None] = {}
    # Keys inserted by the chunk, in order.
    runs_new: dict[str, None] = {}
    steps_new: dict[str, None] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in upserts}

    def flush() -> Fold:
        yield from _many(writes["runs_new"], [tuple(runs[k]) for k in runs_new])  # type: ignore[arg-type]
        yield from _many(writes["runs_old"], [_as_update(runs[k]) for k in runs_changed])  # type: ignore[arg-type]
        yield from _many(writes["steps_new"], [tuple(steps[k]) for k in steps_new])  # type: ignore[arg-type]
        yield from _many(writes["steps_old"], [_as_update(steps[k]) for k in steps_changed])  # type: ignore[arg-type]
        for table, write in upserts.items():
            yield from _many(write, rows[table])
            rows[table].clear()
        for state in (runs, steps, runs_changed, steps_changed, runs_new, steps_new):
            state.clear()

    metadata = rows["run_metadata"]
    lineage = _OpenLineageEvents(projection, tables)
    try:
        for row, e in events:
            kind = type(e)
            position = row[0]
            if lineage.pending and kind is not OpenLineageReceived:
                yield from lineage.settle()
            if kind is StepStarted:
                step_id = _uuid(e.step_run_id)
                if steps.get(step_id) is not None:
                    raise FoldFailed(f"steps: the key {step_id} exists")
                run_id = _uuid(e.run_id)
                steps[step_id] = [
                    step_id,
                    run_id,
                    e.step_name,
                    "running",
                    us_from_datetime(e.started_at),
                    None,
                    None,
                    _json(e.parameters).decode(),
                    e.cache_key,
                    _json(e.upstream_steps).decode(),
                    None,
                    position,
                ]
                steps_new[step_id] = None
                run = runs.get(run_id, _MISSING)
                if run is _MISSING:
                    run = runs[run_id] = yield from _fetch_one(load_run, run_id)
                if run is not None:
                    run[_R_RUNNING] += 1
                    if run_id not in runs_new:
                        runs_changed[run_id] = None
            elif kind is StepFinished:
                step_id = _uuid(e.step_run_id)
                run_id = _uuid(e.run_id)
                finished = us_from_datetime(e.finished_at)
                count = _R_COUNT.get(f"steps_{e.status}")
                if count is None:
                    raise FoldFailed(f"no such column: steps_{e.status}")
                run = runs.get(run_id, _MISSING)
                if run is _MISSING:
                    run = runs[run_id] = yield from _fetch_one(load_run, run_id)
                step = steps.get(step_id, _MISSING)
                if step is _MISSING:
                    step = steps[step_id] = yield from _fetch_one(load_step, step_id)
                # The run's counts first, and only while the step still runs (as the
                # statement's EXISTS reads the step before the step's own update).
                if run is not None and step is not None and step[_S_STATUS] == "running":
                    run[_R_RUNNING] -= 1
                    run[count] += 1
                    if run_id not in runs_new:
                        runs_changed[run_id] = None
                if step is not None:
                    step[_S_STATUS] = e.status
                    step[_S_FINISHED] = finished
                    started = step[_S_STARTED]
                    step[_S_DURATION] = None if started is None else finished - started
                    step[_S_ERROR] = e.error
                    if step_id not in steps_new:
                        steps_changed[step_id] = None
            elif kind is MetadataLogged:
                run_id = _uuid(e.run_id)
                step_text = "" if e.step_run_id is None else _uuid(e.step_run_id)
                for key, value in e.values.items():
                    metadata.append((run_id, step_text, key, _json(value).decode(), position))
            elif kind is RunStarted:
                run_id = _uuid(e.run_id)
                if runs.get(run_id) is not None:
                    raise FoldFailed(f"runs: the key {run_id} exists")
                runs[run_id] = [
                    run_id,
                    e.pipeline_name,
                    e.run_name,
                    None if e.stack_id is None else _uuid(e.stack_id),
                    e.orchestrator_run_id,
                    _json(e.config).decode(),
                    _json(e.tags).decode(),
                    "running",
                    us_from_datetime(e.started_at),
                    None,
                    None,
                    None,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    position,
                ]
                runs_new[run_id] = None
            elif kind is RunFinished:
                run_id = _uuid(e.run_id)
                finished = us_from_datetime(e.finished_at)
                run = runs.get(run_id, _MISSING)
                if run is _MISSING:
                    run = runs[run_id] = yield from _fetch_one(load_run, run_id)
                if run is not None:
                    run[_R_STATUS] = e.status
                    run[_R_FINISHED] = finished
                    started = run[_R_STARTED]
                    run[_R_DURATION] = None if started is None else finished - started
                    run[_R_ERROR] = e.error
                    if run_id not in runs_new:
                        runs_changed[run_id] = None
            elif kind is RunStackDescribed:
                components = [
                    {
                        "type": m.type,
                        "flavor": m.flavor,
                        "name": m.name,
                        "configuration": m.configuration,
                    }
                    for m in e.components
                ]
                rows["described_stacks"].append(
                    (_uuid(e.stack_id), e.name, _json(components).decode(), e.home, position)
                )
            else:
                yield from flush()
                if lineage.takes(kind):
                    yield from lineage.add(row, e)
                else:
                    yield from _barrier(row, e, projection, tables)
    except FoldFailed:
        raise
    except Exception as exc:  # what a handler would raise: the per-event path records it
        raise FoldFailed(f"{type(exc).__name__}: {exc}") from exc
    yield from flush()
    yield from lineage.settle()


# -- artifacts ------------------------------------------------------------------------

_ARTIFACT_COLUMNS = (
    "artifact_id, name, version, uri, artifact_type, data_type, materializer, content_hash, "
    "size_bytes, metadata, run_id, step_run_id, output_name, created_at_us, position"
)


def fold_artifacts(
    events: Sequence[FoldEvent], projection: Projection, tables: tuple[tuple[str, str], ...]
) -> Fold:
    """The ``artifacts`` projection (version 5) folded over a chunk; see the module docstring."""
    names = dict(tables)
    versions_t = names["artifact_versions"]
    load_version = f"SELECT last_version FROM {versions_t} WHERE name = ?"
    writes = {
        "artifacts": _insert(projection, names, "artifacts", _ARTIFACT_COLUMNS),
        "artifact_consumers": _insert(
            projection,
            names,
            "artifact_consumers",
            "step_run_id, input_name, artifact_id, run_id, position",
            "ON CONFLICT (step_run_id, input_name) "
            "DO UPDATE SET artifact_id = excluded.artifact_id, position = excluded.position",
        ),
    }
    insert_version = _insert(projection, names, "artifact_versions", "name, last_version")
    update_version = _update(projection, names, "artifact_versions", "name, last_version")
    # name -> last version, or None once known absent.
    versions: dict[str, int | None] = {}
    versions_new: dict[str, None] = {}
    versions_changed: dict[str, None] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in writes}

    def flush() -> Fold:
        # Versions first: nothing in SQL reads them, but their order is the handlers'.
        yield from _many(insert_version, [(n, versions[n]) for n in versions_new])
        yield from _many(update_version, [(versions[n], n) for n in versions_changed])
        for table, write in writes.items():
            yield from _many(write, rows[table])
            rows[table].clear()
        for state in (versions, versions_new, versions_changed):
            state.clear()

    artifacts, consumers = rows["artifacts"], rows["artifact_consumers"]
    lineage = _OpenLineageEvents(projection, tables)
    try:
        for row, e in events:
            kind = type(e)
            position = row[0]
            if lineage.pending and kind is not OpenLineageReceived:
                yield from lineage.settle()
            if kind is ArtifactProduced:
                artifact_id = _uuid(e.artifact_id)
                step_run_id = _uuid(e.step_run_id)
                run_id = _uuid(e.run_id)
                name = e.artifact_name
                version = versions.get(name, _MISSING)
                if version is _MISSING:
                    found = yield from _fetch_one(load_version, name)
                    version = None if found is None else found[0]
                if version is None:
                    version = 1
                    versions_new[name] = None
                else:
                    version += 1
                    if name not in versions_new:
                        versions_changed[name] = None
                versions[name] = version
                artifacts.append(
                    (
                        artifact_id,
                        name,
                        version,
                        e.uri,
                        e.artifact_type,
                        e.data_type,
                        e.materializer,
                        e.content_hash,
                        e.size_bytes,
                        _json(e.metadata).decode(),
                        run_id,
                        step_run_id,
                        e.output_name,
                        row[6],
                        position,
                    )
                )
            elif kind is ArtifactConsumed:
                artifact_id = _uuid(e.artifact_id)
                step_run_id = _uuid(e.step_run_id)
                run_id = _uuid(e.run_id)
                consumers.append((step_run_id, e.input_name, artifact_id, run_id, position))
            else:
                yield from flush()
                if lineage.takes(kind):
                    yield from lineage.add(row, e)
                else:
                    yield from _barrier(row, e, projection, tables)
    except FoldFailed:
        raise
    except Exception as exc:
        raise FoldFailed(f"{type(exc).__name__}: {exc}") from exc
    yield from flush()
    yield from lineage.settle()


_FOLDERS: dict[type[Projection], Folder] = {
    RunsProjection: fold_runs,
    ArtifactsProjection: fold_artifacts,
}
# The handlers each fold mirrors, by event class: a projection whose handlers differ
# (a patched instance) must take the per-event path.
_MIRRORED: dict[type[Projection], dict[type, str]] = {
    RunsProjection: {
        RunStackDescribed: "_run_stack_described",
        RunStarted: "_run_started",
        StepStarted: "_step_started",
        MetadataLogged: "_metadata_logged",
        StepFinished: "_step_finished",
        RunFinished: "_run_finished",
    },
    ArtifactsProjection: {
        ArtifactProduced: "_produced",
        ArtifactConsumed: "_consumed",
    },
}


def takes_statements(projection: Projection, events: Sequence[FoldEvent]) -> bool:
    """Whether the fold of ``projection`` runs some of ``events`` as SQL statements
    (an event it does not model: an OpenLineage event, a run deletion)."""
    modeled = _MIRRORED.get(type(projection), {})
    return any(type(event) not in modeled for _, event in events)


def folder_for(projection: Projection) -> Folder | None:
    """The fold of ``projection``, or None when it must take the per-event path."""
    cls = type(projection)
    folder = _FOLDERS.get(cls)
    if folder is None or FOLDED_VERSIONS[cls] != projection.version:
        return None
    handlers = projection._handlers
    for event_class, attribute in _MIRRORED[cls].items():
        if handlers.get(event_class) is not getattr(cls, attribute):
            return None
    return folder
