"""Read queries over the views: components, stacks, runs, steps, artifacts, lineage, history.

Every query runs in one read snapshot of the views store (a generator of
``Fetch`` requests), binds every value it receives (names, filters, prefixes
never reach SQL as text), and returns msgspec Structs that the CLI renders as
tables or JSON. The same queries answer on live views and on a scratch store
replayed to a past position (``as of``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from eventstore import (
    ARTIFACT_TYPES,
    WORKSPACE_STREAM,
    EventStore,
    RecordedEvent,
    artifact_event_id,
    datetime_from_us,
    run_stream,
    us_from_datetime,
)

from .errors import AmbiguousReferenceError, QueryError, ViewNotFoundError
from .runs import STEP_STATUSES
from .transactions import Fetch, Tx
from .views_store import ViewsStore

__all__ = [
    "MIN_ID_PREFIX",
    "ArtifactView",
    "ComponentRef",
    "ComponentView",
    "ConsumerView",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "PipelineView",
    "Queries",
    "RunView",
    "StackView",
    "StepView",
    "Summary",
]

Direction = Literal["upstream", "downstream", "both"]
#: The shortest id prefix that names a run or an artifact.
MIN_ID_PREFIX = 4
#: How many candidates an ambiguous reference's error lists.
_CANDIDATES_SHOWN = 10
_json = msgspec.json.Decoder()


def _loads(text: str | None) -> Any:
    return None if text is None else _json.decode(text)


def _aware(value: datetime) -> datetime:
    """Times without an offset are taken as UTC, as everywhere in metaledger."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime_from_us(us)


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / 1_000_000


def display(component_type: str) -> str:
    """``artifact_store`` -> ``artifact store``."""
    return component_type.replace("_", " ")


def _check_ref(kind: str, ref: str) -> str:
    """A reference must name something: an empty one would match everything by prefix."""
    if not ref or not ref.strip():
        raise ViewNotFoundError(kind, ref)
    return ref


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and not 0 <= limit <= _MAX_INT:
        raise QueryError(f"limit must be between 0 and {_MAX_INT}")
    return limit


_MAX_INT = 2**63 - 1


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _distinct(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows without repeats of the same id (column 0), in order."""
    seen: dict[Any, Sequence[Any]] = {}
    for row in rows:
        seen.setdefault(row[0], row)
    return list(seen.values())


def _ambiguous(kind: str, ref: str, candidates: Sequence[str]) -> AmbiguousReferenceError:
    shown = list(candidates[:_CANDIDATES_SHOWN])
    more = "" if len(candidates) <= _CANDIDATES_SHOWN else ", and more"
    return AmbiguousReferenceError(
        f"{ref!r} could mean several {kind}s: {'; '.join(shown)}{more}; give the full {kind} id",
        candidates,
    )


def _suggest(name: str, candidates: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)


def _run_filter(
    pipeline: str | None,
    status: str | None,
    stack: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (on ``runs r``) and parameters of a run listing's filters."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if pipeline is not None:
        where.append("r.pipeline_name = ?")
        params.append(pipeline)
    if status is not None:
        where.append("r.status = ?")
        params.append(status)
    if stack is not None:
        where.append("r.stack_id IN (SELECT stack_id FROM stacks WHERE name = ? OR stack_id = ?)")
        params.extend([stack, stack])
    if since is not None:
        where.append("r.started_at_us >= ?")
        params.append(us_from_datetime(_aware(since)))
    if until is not None:
        where.append("r.started_at_us <= ?")
        params.append(us_from_datetime(_aware(until)))
    return " AND ".join(where), params


class ComponentView(msgspec.Struct, frozen=True, kw_only=True):
    """A stack component as the views show it."""

    component_id: str
    type: str
    flavor: str
    name: str
    configuration: dict[str, Any]
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    stacks: list[str] = []


class ComponentRef(msgspec.Struct, frozen=True, kw_only=True):
    """A component named by a stack."""

    component_id: str
    name: str
    flavor: str


class StackView(msgspec.Struct, frozen=True, kw_only=True):
    """A stack with its components by type."""

    stack_id: str
    name: str
    description: str
    labels: dict[str, str]
    active: bool
    components: dict[str, ComponentRef]
    created_at: datetime
    updated_at: datetime


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    """A step run, with its inputs and outputs (name -> artifact id) and metadata."""

    step_run_id: str
    run_id: str
    name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    parameters: dict[str, Any]
    cache_key: str | None
    upstream_steps: list[str]
    error: str | None
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    metadata: dict[str, Any] = {}


class PipelineView(msgspec.Struct, frozen=True, kw_only=True):
    """A pipeline, as its runs show it: how many runs, and the latest one."""

    name: str
    runs: int
    last_run_id: str
    last_run_name: str
    last_status: str
    last_started_at: datetime


class RunView(msgspec.Struct, frozen=True):
    """A pipeline run; ``steps`` is filled by ``run()`` and left empty by ``runs()``.

    Positional fields (unlike the other views): listings build many of them.
    """

    run_id: str
    pipeline_name: str
    run_name: str
    status: str
    stack_id: str | None
    stack: str | None
    orchestrator_run_id: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    config: dict[str, Any]
    tags: list[str]
    step_counts: dict[str, int]
    metadata: dict[str, Any] = {}
    steps: list[StepView] = []


class ConsumerView(msgspec.Struct, frozen=True, kw_only=True):
    """A step run that read an artifact."""

    step_run_id: str
    step_name: str | None
    run_id: str
    run_name: str | None
    input_name: str


class ArtifactView(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact version with its producer and consumers."""

    artifact_id: str
    name: str
    version: int
    uri: str
    artifact_type: str
    data_type: str | None
    materializer: str | None
    content_hash: str | None
    size_bytes: int | None
    metadata: dict[str, Any]
    run_id: str
    run_name: str | None
    pipeline_name: str | None
    step_run_id: str
    step_name: str | None
    output_name: str
    created_at: datetime
    consumers: list[ConsumerView] = []


class LineageNode(msgspec.Struct, frozen=True, kw_only=True):
    """A node of a lineage graph: an artifact or a step run."""

    id: str
    kind: Literal["artifact", "step"]
    label: str
    run_id: str | None = None
    run_name: str | None = None
    depth: int = 0
    #: A step run's status (completed, failed...): a failed try and its retry differ.
    status: str | None = None


class LineageEdge(msgspec.Struct, frozen=True, kw_only=True):
    """A lineage edge: a step ``produced`` an artifact, or a step ``consumed`` an artifact."""

    source: str
    target: str
    kind: Literal["produced", "consumed"]
    name: str


class LineageGraph(msgspec.Struct, frozen=True, kw_only=True):
    """The lineage around some roots, up to ``depth`` step-hops in ``direction``."""

    roots: list[str]
    direction: str
    depth: int
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = False


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of what the views hold: for ``replay`` and ``store describe``."""

    components: int
    stacks: int
    active_stack: str | None
    runs: dict[str, int]
    steps: int
    artifacts: int


_COMPONENT_COLUMNS = (
    "component_id, type, flavor, name, configuration, labels, created_at_us, updated_at_us, deleted"
)
_RUN_COLUMNS = (
    "r.run_id, r.pipeline_name, r.run_name, r.status, r.stack_id, s.name, r.orchestrator_run_id, "
    "r.started_at_us, r.finished_at_us, r.duration_us, r.error, r.config, r.tags, "
    + ", ".join(f"r.steps_{status}" for status in STEP_STATUSES)
)
_STEP_COLUMNS = (
    "step_run_id, run_id, step_name, status, started_at_us, finished_at_us, duration_us, "
    "parameters, cache_key, upstream_steps, error"
)
_ARTIFACT_COLUMNS = (
    "a.artifact_id, a.name, a.version, a.uri, a.artifact_type, a.data_type, a.materializer, "
    "a.content_hash, a.size_bytes, a.metadata, a.run_id, r.run_name, r.pipeline_name, "
    "a.step_run_id, st.step_name, a.output_name, a.created_at_us"
)
_ARTIFACT_FROM = (
    "artifacts a LEFT JOIN artifact_runs r ON r.run_id = a.run_id "
    "LEFT JOIN artifact_steps st ON st.step_run_id = a.step_run_id"
)


def _component(row: Sequence[Any], stacks: list[str]) -> ComponentView:
    return ComponentView(
        component_id=row[0],
        type=row[1],
        flavor=row[2],
        name=row[3],
        configuration=_loads(row[4]),
        labels=_loads(row[5]),
        created_at=datetime_from_us(row[6]),
        updated_at=datetime_from_us(row[7]),
        deleted=bool(row[8]),
        stacks=stacks,
    )


def _run(
    row: Sequence[Any],
    metadata: dict[str, Any] | None = None,
    steps: list[StepView] | None = None,
    config: Any = None,
) -> RunView:
    finished = row[8]
    duration = row[9]
    run_config, tags = _json.decode(f"[{row[11]},{row[12]}]") if config is None else config
    return RunView(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        datetime_from_us(row[7]),
        None if finished is None else datetime_from_us(finished),
        None if duration is None else duration / 1_000_000,
        row[10],
        run_config,
        tags,
        {status: n for status, n in zip(STEP_STATUSES, row[13:19], strict=True) if n},
        metadata or {},
        steps or [],
    )


def _runs(rows: Sequence[Sequence[Any]]) -> list[RunView]:
    """Many rows at once: their JSON columns are decoded in one call, not two per row."""
    if not rows:
        return []
    decoded = _json.decode("[" + ",".join(f"[{r[11]},{r[12]}]" for r in rows) + "]")
    return [_run(row, config=pair) for row, pair in zip(rows, decoded, strict=True)]


def _artifact(row: Sequence[Any], consumers: list[ConsumerView] | None = None) -> ArtifactView:
    return ArtifactView(
        artifact_id=row[0],
        name=row[1],
        version=row[2],
        uri=row[3],
        artifact_type=row[4],
        data_type=row[5],
        materializer=row[6],
        content_hash=row[7],
        size_bytes=row[8],
        metadata=_loads(row[9]),
        run_id=row[10],
        run_name=row[11],
        pipeline_name=row[12],
        step_run_id=row[13],
        step_name=row[14],
        output_name=row[15],
        created_at=datetime_from_us(row[16]),
        consumers=consumers or [],
    )


class Queries:
    """The read side over one views store (live, or replayed as of a position)."""

    def __init__(self, views: ViewsStore, store: EventStore | None = None) -> None:
        self.views = views
        self.store = store

    # -- components and stacks -------------------------------------------------

    async def components(
        self, component_type: str | None = None, *, include_deleted: bool = False
    ) -> list[ComponentView]:
        """Components, of one type or all, by type then name."""

        def body() -> Tx[list[ComponentView]]:
            where: list[str] = ["1 = 1"]
            params: list[Any] = []
            if component_type is not None:
                where.append("type = ?")
                params.append(component_type)
            if not include_deleted:
                where.append("deleted = 0")
            rows = yield Fetch(
                f"SELECT {_COMPONENT_COLUMNS} FROM components WHERE {' AND '.join(where)} "
                "ORDER BY type, name, created_at_us",
                tuple(params),
            )
            usage = yield from self._stack_usage()
            return [_component(row, usage.get(row[0], [])) for row in rows]

        result: list[ComponentView] = await self.views.read(body)
        return result

    def _stack_usage(self) -> Tx[dict[str, list[str]]]:
        rows = yield Fetch(
            "SELECT sc.component_id, s.name FROM stack_components sc "
            "JOIN stacks s ON s.stack_id = sc.stack_id WHERE s.deleted = 0 ORDER BY s.name"
        )
        usage: dict[str, list[str]] = {}
        for component_id, stack_name in rows:
            usage.setdefault(component_id, []).append(stack_name)
        return usage

    async def component(self, component_type: str, ref: str | None = None) -> ComponentView:
        """One live component of a type by name or id (or prefix); ``None``: the active stack's."""

        if ref is not None:
            _check_ref(display(component_type), ref)

        def body() -> Tx[ComponentView]:
            key = ref
            if key is None:
                active = yield from self._active_stack_id()
                rows = yield Fetch(
                    "SELECT component_id FROM stack_components WHERE stack_id = ? AND type = ?",
                    (active or "", component_type),
                )
                if not rows:
                    raise ViewNotFoundError(component_type.replace("_", " "), "(active stack)")
                key = rows[0][0]
            rows = yield Fetch(
                f"SELECT {_COMPONENT_COLUMNS} FROM components WHERE type = ? AND deleted = 0 "
                "AND (name = ? OR component_id = ?)",
                (component_type, key, key),
            )
            if not rows:
                rows = yield Fetch(
                    f"SELECT {_COMPONENT_COLUMNS} FROM components WHERE type = ? AND deleted = 0 "
                    "AND component_id LIKE ? ESCAPE '\\'",
                    (component_type, _like_prefix(key)),
                )
            if len(rows) != 1:
                names = yield Fetch(
                    "SELECT name FROM components WHERE type = ? AND deleted = 0", (component_type,)
                )
                if len(rows) > 1:
                    raise QueryError(f"{key!r} matches {len(rows)} components; give more of the id")
                raise ViewNotFoundError(
                    component_type.replace("_", " "), key, _suggest(key, [n for (n,) in names])
                )
            usage = yield from self._stack_usage()
            return _component(rows[0], usage.get(rows[0][0], []))

        result: ComponentView = await self.views.read(body)
        return result

    def _active_stack_id(self) -> Tx[str | None]:
        rows = yield Fetch("SELECT stack_id FROM active_stack WHERE slot = 1")
        return str(rows[0][0]) if rows else None

    def _stacks(self, where: str, params: tuple[Any, ...]) -> Tx[list[StackView]]:
        active = yield from self._active_stack_id()
        rows = yield Fetch(
            "SELECT stack_id, name, description, labels, created_at_us, updated_at_us FROM stacks "
            f"WHERE deleted = 0 AND {where} ORDER BY name",
            params,
        )
        members = yield Fetch(
            "SELECT sc.stack_id, sc.type, c.component_id, c.name, c.flavor "
            "FROM stack_components sc JOIN components c ON c.component_id = sc.component_id "
            "ORDER BY sc.type"
        )
        by_stack: dict[str, dict[str, ComponentRef]] = {}
        for stack_id, component_type, component_id, name, flavor in members:
            by_stack.setdefault(stack_id, {})[component_type] = ComponentRef(
                component_id=component_id, name=name, flavor=flavor
            )
        return [
            StackView(
                stack_id=row[0],
                name=row[1],
                description=row[2],
                labels=_loads(row[3]),
                active=row[0] == active,
                components=by_stack.get(row[0], {}),
                created_at=datetime_from_us(row[4]),
                updated_at=datetime_from_us(row[5]),
            )
            for row in rows
        ]

    async def stacks(self) -> list[StackView]:
        """Live stacks by name, each with its components and whether it is active."""
        result: list[StackView] = await self.views.read(lambda: self._stacks("1 = 1", ()))
        return result

    async def stack(self, ref: str | None = None) -> StackView:
        """One live stack by name or id; ``None`` for the active stack."""

        if ref is not None:
            _check_ref("stack", ref)

        def body() -> Tx[StackView]:
            if ref is None:
                active = yield from self._active_stack_id()
                if active is None:
                    raise ViewNotFoundError("active stack", "(none set)")
                found = yield from self._stacks("stack_id = ?", (active,))
            else:
                found = yield from self._stacks("(name = ? OR stack_id = ?)", (ref, ref))
                if not found:
                    found = yield from self._stacks(
                        "stack_id LIKE ? ESCAPE '\\'", (_like_prefix(ref),)
                    )
            if len(found) != 1:
                if len(found) > 1:
                    raise QueryError(f"{ref!r} matches {len(found)} stacks; give more of the id")
                names = yield Fetch("SELECT name FROM stacks WHERE deleted = 0")
                raise ViewNotFoundError(
                    "stack", str(ref), _suggest(str(ref), [n for (n,) in names])
                )
            return found[0]

        result: StackView = await self.views.read(body)
        return result

    # -- runs and steps -----------------------------------------------------------

    async def pipelines(self, name: str | None = None) -> list[PipelineView]:
        """Pipelines (names of live runs), the most recently run first; or the one named.

        A ``name`` no live run has raises ViewNotFoundError with close names.
        """

        def body() -> Tx[list[PipelineView]]:
            where, params = ("WHERE pipeline_name = ?", (name,)) if name is not None else ("", ())
            rows = yield Fetch(
                "SELECT r.pipeline_name, c.n, r.run_id, r.run_name, r.status, r.started_at_us "
                "FROM runs r JOIN (SELECT pipeline_name, COUNT(*) AS n, "
                f"MAX(started_at_us) AS last FROM runs {where} GROUP BY pipeline_name) c "
                "ON c.pipeline_name = r.pipeline_name AND r.started_at_us = c.last "
                "ORDER BY r.started_at_us DESC, r.position DESC",
                params,
            )
            found: dict[str, PipelineView] = {}
            for row in rows:
                if row[0] not in found:
                    found[row[0]] = PipelineView(
                        name=row[0],
                        runs=row[1],
                        last_run_id=row[2],
                        last_run_name=row[3],
                        last_status=row[4],
                        last_started_at=datetime_from_us(row[5]),
                    )
            if name is not None and not found:
                names = yield Fetch("SELECT DISTINCT pipeline_name FROM runs LIMIT 2000")
                raise ViewNotFoundError("pipeline", name, _suggest(name, [n for (n,) in names]))
            return list(found.values())

        result: list[PipelineView] = await self.views.read(body)
        return result

    async def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        stack: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 50,
    ) -> list[RunView]:
        """Runs, newest first, filtered by pipeline, status, stack (name or id) and start time."""
        _check_limit(limit)
        where, params = _run_filter(pipeline, status, stack, since, until)
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM runs r LEFT JOIN stacks s ON s.stack_id = r.stack_id "
            f"WHERE {where} ORDER BY r.started_at_us DESC, r.position DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self.views.fetch(sql, params)
        return _runs(rows)

    async def count_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        stack: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many runs :meth:`runs` would list without a limit (for "50 of 6,250 runs")."""
        where, params = _run_filter(pipeline, status, stack, since, until)
        [(count,)] = await self.views.fetch(f"SELECT COUNT(*) FROM runs r WHERE {where}", params)
        return int(count)

    def _resolve_run(self, ref: str) -> Tx[Sequence[Any]]:
        """Exact id, else the one live run that ``ref`` names or is an id prefix of.

        A name and an id prefix are weighed together: when they point at
        different runs the reference is ambiguous, so a run named like another
        run's id prefix can never redirect a command.
        """
        _check_ref("run", ref)
        base = f"SELECT {_RUN_COLUMNS} FROM runs r LEFT JOIN stacks s ON s.stack_id = r.stack_id"
        rows = yield Fetch(f"{base} WHERE r.run_id = ?", (ref,))
        if rows:
            exact: Sequence[Any] = rows[0]
            return exact
        limit = _CANDIDATES_SHOWN + 1
        named = yield Fetch(
            f"{base} WHERE r.run_name = ? ORDER BY r.started_at_us DESC LIMIT ?", (ref, limit)
        )
        prefixed = yield from self._id_prefix_rows(base, "r.run_id", ref, limit)
        candidates = _distinct(list(named) + list(prefixed))
        if len(candidates) == 1:
            found: Sequence[Any] = candidates[0]
            return found
        if candidates:
            raise _ambiguous(
                "run", ref, [f"{row[2]} (run id {row[0]}, pipeline {row[1]})" for row in candidates]
            )
        yield from self._check_short_prefix("run", "runs", "run_id", ref)
        names = yield Fetch("SELECT run_name FROM runs ORDER BY started_at_us DESC LIMIT 2000")
        pipeline = yield Fetch("SELECT COUNT(*) FROM runs WHERE pipeline_name = ?", (ref,))
        hint = ""
        if pipeline and pipeline[0][0]:
            count = pipeline[0][0]
            hint = (
                f"{ref!r} is a pipeline with {count} run{'' if count == 1 else 's'}: "
                f"list them with `metaledger pipeline runs {ref}`"
            )
        raise ViewNotFoundError("run", ref, _suggest(ref, [n for (n,) in names]), hint=hint)

    def _id_prefix_rows(
        self, base: str, column: str, ref: str, limit: int
    ) -> Tx[Sequence[Sequence[Any]]]:
        if len(ref) < MIN_ID_PREFIX:
            return []
        rows: Sequence[Sequence[Any]] = yield Fetch(
            f"{base} WHERE {column} LIKE ? ESCAPE '\\' ORDER BY {column} LIMIT ?",
            (_like_prefix(ref), limit),
        )
        return rows

    def _check_short_prefix(self, kind: str, table: str, column: str, ref: str) -> Tx[None]:
        """A reference too short to be an id prefix, that would match some id, is refused."""
        if len(ref) >= MIN_ID_PREFIX:
            return
        rows = yield Fetch(
            f"SELECT COUNT(*) FROM {table} WHERE {column} LIKE ? ESCAPE '\\'",
            (_like_prefix(ref),),
        )
        if rows and rows[0][0]:
            raise AmbiguousReferenceError(
                f"{ref!r} is too short to name a {kind} by id prefix "
                f"(it starts {rows[0][0]} {kind} ids): give at least {MIN_ID_PREFIX} "
                f"characters of the id, or the {kind}'s name"
            )

    async def run(self, ref: str) -> RunView:
        """One run, with its steps: by id, run name, or unique id prefix (4+ characters).

        A reference that could mean several runs raises AmbiguousReferenceError
        listing them.
        """

        def body() -> Tx[RunView]:
            row = yield from self._resolve_run(ref)
            steps = yield from self._steps(row[0])
            metadata = yield from self._metadata(row[0], "")
            return _run(row, metadata, steps)

        result: RunView = await self.views.read(body)
        return result

    def _metadata(self, run_id: str, step_run_id: str | None) -> Tx[dict[str, Any]]:
        rows = yield Fetch(
            "SELECT key, value FROM run_metadata WHERE run_id = ? AND step_run_id = ? ORDER BY key",
            (run_id, step_run_id or ""),
        )
        return {key: _loads(value) for key, value in rows}

    def _steps(self, run_id: str) -> Tx[list[StepView]]:
        rows = yield Fetch(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
        )
        inputs = yield Fetch(
            "SELECT step_run_id, input_name, artifact_id FROM step_inputs WHERE run_id = ? "
            "ORDER BY input_name",
            (run_id,),
        )
        outputs = yield Fetch(
            "SELECT step_run_id, output_name, artifact_id FROM step_outputs WHERE run_id = ? "
            "ORDER BY output_name",
            (run_id,),
        )
        metadata = yield Fetch(
            "SELECT step_run_id, key, value FROM run_metadata "
            "WHERE run_id = ? AND step_run_id <> '' ORDER BY key",
            (run_id,),
        )
        by_step: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, items in (("inputs", inputs), ("outputs", outputs), ("metadata", metadata)):
            for step_run_id, key, value in items:
                by_step.setdefault(step_run_id, {}).setdefault(kind, {})[key] = (
                    _loads(value) if kind == "metadata" else value
                )
        return [
            StepView(
                step_run_id=row[0],
                run_id=row[1],
                name=row[2],
                status=row[3],
                started_at=datetime_from_us(row[4]),
                finished_at=_time(row[5]),
                duration_s=_seconds(row[6]),
                parameters=_loads(row[7]),
                cache_key=row[8],
                upstream_steps=_loads(row[9]),
                error=row[10],
                inputs=by_step.get(row[0], {}).get("inputs", {}),
                outputs=by_step.get(row[0], {}).get("outputs", {}),
                metadata=by_step.get(row[0], {}).get("metadata", {}),
            )
            for row in rows
        ]

    async def steps(self, run_ref: str) -> list[StepView]:
        """The step runs of one run, in the order they started."""

        def body() -> Tx[list[StepView]]:
            row = yield from self._resolve_run(run_ref)
            steps = yield from self._steps(row[0])
            return steps

        result: list[StepView] = await self.views.read(body)
        return result

    # -- artifacts -------------------------------------------------------------

    async def artifacts(
        self,
        *,
        artifact_type: str | None = None,
        run: str | None = None,
        name: str | None = None,
        limit: int | None = 100,
    ) -> list[ArtifactView]:
        """Artifacts, newest first, filtered by type, producing run (any run reference) or name.

        A type outside ZenML's (``ARTIFACT_TYPES``) is a QueryError naming close ones.
        """
        _check_limit(limit)
        if artifact_type is not None and artifact_type not in ARTIFACT_TYPES:
            lowered = {t.lower(): t for t in ARTIFACT_TYPES}
            close = difflib.get_close_matches(artifact_type.lower(), lowered, n=1, cutoff=0.5)
            hint = f"did you mean {lowered[close[0]]!r}? " if close else ""
            raise QueryError(
                f"{artifact_type!r} is not an artifact type; {hint}"
                f"known: {', '.join(ARTIFACT_TYPES)}"
            )

        def body() -> Tx[list[ArtifactView]]:
            where, params = yield from self._artifact_filter(artifact_type, run, name)
            sql = (
                f"SELECT {_ARTIFACT_COLUMNS} FROM {_ARTIFACT_FROM} WHERE {where} "
                "ORDER BY a.position DESC"
            )
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            rows = yield Fetch(sql, tuple(params))
            return [_artifact(row) for row in rows]

        result: list[ArtifactView] = await self.views.read(body)
        return result

    async def count_artifacts(
        self, *, artifact_type: str | None = None, run: str | None = None, name: str | None = None
    ) -> int:
        """How many artifacts :meth:`artifacts` would list without a limit."""

        def body() -> Tx[int]:
            where, params = yield from self._artifact_filter(artifact_type, run, name)
            [(count,)] = yield Fetch(
                f"SELECT COUNT(*) FROM artifacts a WHERE {where}", tuple(params)
            )
            return int(count)

        result: int = await self.views.read(body)
        return result

    def _artifact_filter(
        self, artifact_type: str | None, run: str | None, name: str | None
    ) -> Tx[tuple[str, list[Any]]]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if artifact_type is not None:
            where.append("a.artifact_type = ?")
            params.append(artifact_type)
        if run is not None:
            row = yield from self._resolve_run(run)
            where.append("a.run_id = ?")
            params.append(row[0])
        if name is not None:
            where.append("a.name = ?")
            params.append(name)
        return " AND ".join(where), params

    def _resolve_artifact(self, ref: str) -> Tx[Sequence[Any]]:
        """Exact id, ``name:version``, else the one artifact ``ref`` names or is an id prefix of.

        A name means its latest version. As for runs, a name and an id prefix
        pointing at different artifacts make the reference ambiguous.
        """
        _check_ref("artifact", ref)
        base = f"SELECT {_ARTIFACT_COLUMNS} FROM {_ARTIFACT_FROM}"
        rows = yield Fetch(f"{base} WHERE a.artifact_id = ?", (ref,))
        if not rows and ":" in ref:
            name, _, version = ref.rpartition(":")
            if version.isascii() and version.isdigit() and len(version) < 19:
                rows = yield Fetch(
                    f"{base} WHERE a.name = ? AND a.version = ?", (name, int(version))
                )
        if rows:
            exact: Sequence[Any] = rows[0]
            return exact
        limit = _CANDIDATES_SHOWN + 1
        named = yield Fetch(f"{base} WHERE a.name = ? ORDER BY a.version DESC LIMIT 1", (ref,))
        prefixed = yield from self._id_prefix_rows(base, "a.artifact_id", ref, limit)
        candidates = _distinct(list(named) + list(prefixed))
        if len(candidates) == 1:
            found: Sequence[Any] = candidates[0]
            return found
        if candidates:
            raise _ambiguous(
                "artifact", ref, [f"{row[1]}:{row[2]} (artifact id {row[0]})" for row in candidates]
            )
        yield from self._check_short_prefix("artifact", "artifacts", "artifact_id", ref)
        names = yield Fetch("SELECT DISTINCT name FROM artifacts LIMIT 2000")
        raise ViewNotFoundError("artifact", ref, _suggest(ref, [n for (n,) in names]))

    async def artifact(self, ref: str) -> ArtifactView:
        """One artifact: by id, ``name:version``, name (latest version) or unique id prefix.

        The id prefix needs 4+ characters; a reference that could mean several
        artifacts raises AmbiguousReferenceError listing them.
        """

        def body() -> Tx[ArtifactView]:
            row = yield from self._resolve_artifact(ref)
            consumers = yield Fetch(
                "SELECT c.step_run_id, st.step_name, c.run_id, r.run_name, c.input_name "
                "FROM artifact_consumers c "
                "LEFT JOIN artifact_steps st ON st.step_run_id = c.step_run_id "
                "LEFT JOIN artifact_runs r ON r.run_id = c.run_id "
                "WHERE c.artifact_id = ? ORDER BY c.position",
                (row[0],),
            )
            return _artifact(
                row,
                [
                    ConsumerView(
                        step_run_id=c[0],
                        step_name=c[1],
                        run_id=c[2],
                        run_name=c[3],
                        input_name=c[4],
                    )
                    for c in consumers
                ],
            )

        result: ArtifactView = await self.views.read(body)
        return result

    # -- lineage ---------------------------------------------------------------

    async def lineage(
        self,
        *,
        artifact: str | None = None,
        run: str | None = None,
        direction: Direction = "both",
        depth: int = 3,
    ) -> LineageGraph:
        """The lineage graph around an artifact or a run, ``depth`` step-hops each way.

        One step-hop is two edges: upstream of an artifact, depth 1 reaches the
        step that produced it and that step's inputs. ``truncated`` says whether
        the graph goes on beyond the depth.
        """
        if (artifact is None) == (run is None):
            raise QueryError("give exactly one of an artifact or a run")
        if depth < 0:
            raise QueryError("depth must be >= 0")
        if direction not in ("upstream", "downstream", "both"):
            raise QueryError(f"direction must be upstream, downstream or both, not {direction!r}")

        def body() -> Tx[LineageGraph]:
            if artifact is not None:
                row = yield from self._resolve_artifact(artifact)
                roots = [str(row[0])]
            else:
                assert run is not None
                row = yield from self._resolve_run(run)
                steps = yield Fetch(
                    "SELECT step_run_id FROM artifact_steps WHERE run_id = ?", (row[0],)
                )
                roots = [str(s) for (s,) in steps]
            graph = yield from self._walk(roots, direction, depth)
            return graph

        result: LineageGraph = await self.views.read(body)
        return result

    def _walk(self, roots: list[str], direction: Direction, depth: int) -> Tx[LineageGraph]:
        edges: dict[tuple[str, str, str], LineageEdge] = {}
        distance: dict[str, int] = dict.fromkeys(roots, 0)
        truncated = False
        for upstream in (True, False):
            if direction == ("downstream" if upstream else "upstream"):
                continue
            # Each direction walks on its own: a node seen going up (a run reading
            # its own output) must still be expanded going down.
            seen: set[str] = set(roots)
            frontier = list(roots)
            hops = 0
            while frontier:
                column = "target_id" if upstream else "source_id"
                found: list[tuple[Any, ...]] = []
                for start in range(0, len(frontier), 500):
                    chunk = frontier[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found.extend(
                        (
                            yield Fetch(
                                "SELECT source_id, source_kind, target_id, target_kind, name "
                                f"FROM lineage_edges WHERE {column} IN ({marks})",
                                tuple(chunk),
                            )
                        )
                    )
                if not found:
                    break
                if hops >= 2 * depth:
                    truncated = True
                    break
                hops += 1
                next_frontier: list[str] = []
                for source, source_kind, target, _, name in found:
                    kind: Literal["produced", "consumed"] = (
                        "produced" if source_kind == "step" else "consumed"
                    )
                    edges.setdefault(
                        (source, target, name),
                        LineageEdge(source=source, target=target, kind=kind, name=name),
                    )
                    reached = source if upstream else target
                    if reached not in seen:
                        seen.add(reached)
                        hop_depth = (hops + 1) // 2
                        distance[reached] = min(distance.get(reached, hop_depth), hop_depth)
                        next_frontier.append(reached)
                frontier = next_frontier
        nodes = yield from self._nodes(distance)
        listed = {n.id for n in nodes}
        return LineageGraph(
            roots=roots,
            direction=direction,
            depth=depth,
            nodes=nodes,
            # An edge to a node the views no longer hold (its run was deleted) is dropped.
            edges=sorted(
                (e for e in edges.values() if e.source in listed and e.target in listed),
                key=lambda e: (e.source, e.target, e.name),
            ),
            truncated=truncated,
        )

    def _nodes(self, distance: dict[str, int]) -> Tx[list[LineageNode]]:
        ids = list(distance)
        nodes: dict[str, LineageNode] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            artifacts = yield Fetch(
                "SELECT a.artifact_id, a.name, a.version, a.run_id, r.run_name FROM artifacts a "
                "LEFT JOIN artifact_runs r ON r.run_id = a.run_id "
                f"WHERE a.artifact_id IN ({marks})",
                tuple(chunk),
            )
            for artifact_id, name, version, run_id, run_name in artifacts:
                nodes[artifact_id] = LineageNode(
                    id=artifact_id,
                    kind="artifact",
                    label=f"{name}:v{version}",
                    run_id=run_id,
                    run_name=run_name,
                    depth=distance[artifact_id],
                )
            steps = yield Fetch(
                "SELECT st.step_run_id, st.step_name, st.run_id, r.run_name, sr.status "
                "FROM artifact_steps st LEFT JOIN artifact_runs r ON r.run_id = st.run_id "
                "LEFT JOIN steps sr ON sr.step_run_id = st.step_run_id "
                f"WHERE st.step_run_id IN ({marks})",
                tuple(chunk),
            )
            for step_run_id, step_name, run_id, run_name, status in steps:
                nodes[step_run_id] = LineageNode(
                    id=step_run_id,
                    kind="step",
                    label=step_name,
                    run_id=run_id,
                    run_name=run_name,
                    depth=distance[step_run_id],
                    status=status,
                )
        ordered = [nodes.get(i) for i in ids]
        return sorted(
            (n for n in ordered if n is not None), key=lambda n: (n.depth, n.kind, n.label, n.id)
        )

    # -- summary and history -----------------------------------------------------

    async def summary(self) -> Summary:
        """How many components, stacks, runs (by status), steps and artifacts the views hold."""

        def body() -> Tx[Summary]:
            [(components,)] = yield Fetch("SELECT COUNT(*) FROM components WHERE deleted = 0")
            [(stacks,)] = yield Fetch("SELECT COUNT(*) FROM stacks WHERE deleted = 0")
            active = yield Fetch(
                "SELECT s.name FROM active_stack a JOIN stacks s ON s.stack_id = a.stack_id"
            )
            runs = yield Fetch("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
            [(steps,)] = yield Fetch("SELECT COUNT(*) FROM steps")
            [(artifacts,)] = yield Fetch("SELECT COUNT(*) FROM artifacts")
            return Summary(
                components=int(components),
                stacks=int(stacks),
                active_stack=active[0][0] if active else None,
                runs={str(k): int(v) for k, v in runs},
                steps=int(steps),
                artifacts=int(artifacts),
            )

        result: Summary = await self.views.read(body)
        return result

    async def history(
        self, kind: Literal["component", "stack", "run", "artifact"], ref: str
    ) -> list[RecordedEvent]:
        """Every event of one entity, from the log, in order (needs the store)."""
        if self.store is None:
            raise QueryError("history needs the event store")
        store = self.store
        if kind == "run":
            run = await self.run(ref)
            return [e async for e in store.read_stream(run_stream(_uuid(run.run_id)))]
        if kind == "artifact":
            found = await self.artifact(ref)
            produced = await store.get_event(artifact_event_id(_uuid(found.artifact_id)))
            consumed = await self.views.fetch(
                "SELECT run_id FROM artifact_consumers WHERE artifact_id = ?", (found.artifact_id,)
            )
            by_position = {produced.position: produced} if produced is not None else {}
            for (run_id,) in dict.fromkeys(consumed):
                async for recorded in store.read_stream(run_stream(_uuid(run_id))):
                    if getattr(recorded.event, "artifact_id", None) == _uuid(found.artifact_id):
                        by_position[recorded.position] = recorded
            return [by_position[p] for p in sorted(by_position)]
        _check_ref(kind, ref)
        table, field = (
            ("components", "component_id") if kind == "component" else ("stacks", "stack_id")
        )
        # An id names one entity; a name, the live one, else the latest deleted one of that name.
        rows = await self.views.fetch(
            f"SELECT {field} FROM {table} WHERE {field} = ? OR name = ? "
            f"ORDER BY {field} = ? DESC, deleted ASC, position DESC LIMIT 1",
            (ref, ref, ref),
        )
        if not rows:
            raise ViewNotFoundError(kind, ref)
        entity = _uuid(rows[0][0])
        return [
            e
            async for e in store.read_stream(WORKSPACE_STREAM)
            if getattr(e.event, field, None) == entity
        ]


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)
