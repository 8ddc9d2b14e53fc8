"""Run queries: runs and their steps, and resolving a run reference."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventstore import datetime_from_us, us_from_datetime
from projections.errors import QueryError, ViewNotFoundError
from projections.runs import STEP_STATUSES
from projections.transactions import Fetch, Tx

from .common import (
    _CANDIDATES_SHOWN,
    ViewsReader,
    _aware,
    _check_limit,
    _check_ref,
    _json,
    _loads,
    _one_candidate,
    _seconds,
    _suggest,
    _time,
)


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


_RUN_COLUMNS = (
    "r.run_id, r.pipeline_name, r.run_name, r.status, r.stack_id, "
    # A stack of another (home) store is known here by the description its runs carried.
    "COALESCE(s.name, (SELECT d.name FROM described_stacks d WHERE d.stack_id = r.stack_id)), "
    "r.orchestrator_run_id, "
    "r.started_at_us, r.finished_at_us, r.duration_us, r.error, r.config, r.tags, "
    + ", ".join(f"r.steps_{status}" for status in STEP_STATUSES)
)


_STEP_COLUMNS = (
    "step_run_id, run_id, step_name, status, started_at_us, finished_at_us, duration_us, "
    "parameters, cache_key, upstream_steps, error"
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
        where.append(
            "r.stack_id IN (SELECT stack_id FROM stacks WHERE name = ? OR stack_id = ? "
            "UNION SELECT stack_id FROM described_stacks WHERE name = ? OR stack_id = ?)"
        )
        params.extend([stack, stack, stack, stack])
    if since is not None:
        where.append("r.started_at_us >= ?")
        params.append(us_from_datetime(_aware(since)))
    if until is not None:
        where.append("r.started_at_us <= ?")
        params.append(us_from_datetime(_aware(until)))
    return " AND ".join(where), params


def _resolve_run(ref: str) -> Tx[Sequence[Any]]:
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
    named = yield Fetch(
        f"{base} WHERE r.run_name = ? ORDER BY r.started_at_us DESC LIMIT ?",
        (ref, _CANDIDATES_SHOWN + 1),
    )
    found = yield from _one_candidate(
        "run", ref, base, "r.run_id", named, lambda r: f"{r[2]} (run id {r[0]}, pipeline {r[1]})"
    )
    if found is not None:
        return found
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


def _metadata(run_id: str, step_run_id: str | None) -> Tx[dict[str, Any]]:
    rows = yield Fetch(
        "SELECT key, value FROM run_metadata WHERE run_id = ? AND step_run_id = ? ORDER BY key",
        (run_id, step_run_id or ""),
    )
    return {key: _loads(value) for key, value in rows}


def _steps(run_id: str) -> Tx[list[StepView]]:
    rows = yield Fetch(
        f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
    )
    # The artifacts projection's rows: what a step read and wrote is lineage.
    inputs = yield Fetch(
        "SELECT step_run_id, input_name, artifact_id FROM artifact_consumers WHERE run_id = ? "
        "ORDER BY input_name",
        (run_id,),
    )
    # A name written twice by one step names its newest artifact (the later row wins);
    # a dataset's source artifact (no step wrote it) is no output.
    outputs = yield Fetch(
        "SELECT step_run_id, output_name, artifact_id FROM artifacts "
        "WHERE run_id = ? AND step_run_id <> '' ORDER BY output_name, position",
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


class RunQueries(ViewsReader):
    """Queries of runs and step runs."""

    async def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        stack: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 50,
        after: str | None = None,
    ) -> list[RunView]:
        """Runs, newest first, filtered by pipeline, status, stack (name or id) and start time.

        ``after`` (a run id, the last of a previous page) continues a listing
        past that run: keyset pagination, stable while runs are added. An
        unknown run id is a QueryError.
        """
        _check_limit(limit)
        where, params = _run_filter(pipeline, status, stack, since, until)
        if after is not None:
            found = await self.views.fetch("SELECT 1 FROM runs WHERE run_id = ?", (after,))
            if not found:
                raise QueryError(f"no run {after!r} to continue after (deleted, or not a run id)")
            # The listing's order, (started_at_us, position) descending, as one key.
            where += (
                " AND (r.started_at_us, r.position) < "
                "(SELECT started_at_us, position FROM runs WHERE run_id = ?)"
            )
            params.append(after)
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
        most: int | None = None,
    ) -> int:
        """How many runs :meth:`runs` would list without a limit (for "50 of 6,250 runs").

        ``most`` stops counting there (the answer is then at most ``most``): a
        count of every run walks them all, which on 100,000 runs costs as much
        as the page of runs itself.
        """
        where, params = _run_filter(pipeline, status, stack, since, until)
        if most is None:
            sql = f"SELECT COUNT(*) FROM runs r WHERE {where}"
        else:
            sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM runs r WHERE {where} LIMIT ?) AS counted"
            params.append(max(most, 0))
        [(count,)] = await self.views.fetch(sql, params)
        return int(count)

    async def run(self, ref: str) -> RunView:
        """One run, with its steps: by id, run name, or unique id prefix (4+ characters).

        A reference that could mean several runs raises AmbiguousReferenceError
        listing them.
        """

        def body() -> Tx[RunView]:
            row = yield from _resolve_run(ref)
            steps = yield from _steps(row[0])
            metadata = yield from _metadata(row[0], "")
            return _run(row, metadata, steps)

        result: RunView = await self.views.read(body)
        return result

    async def described_stack(self, stack_id: str) -> dict[str, Any] | None:
        """The description runs carried of a stack of another home store, or None.

        ``{"name", "components": [{"type", "flavor", "name", "configuration"}], "home"}``.
        """
        rows = await self.views.fetch(
            "SELECT name, components, home FROM described_stacks WHERE stack_id = ?", (stack_id,)
        )
        if not rows:
            return None
        name, components, home = rows[0]
        return {"name": name, "components": _json.decode(components), "home": home}

    async def steps(self, run_ref: str) -> list[StepView]:
        """The step runs of one run, in the order they started."""

        def body() -> Tx[list[StepView]]:
            row = yield from _resolve_run(run_ref)
            steps = yield from _steps(row[0])
            return steps

        result: list[StepView] = await self.views.read(body)
        return result
