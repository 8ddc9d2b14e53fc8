"""The ``runs`` projection: pipeline runs and their step runs.

A run row carries its status, times, duration, error and step counts by
status; a step row its status, times, parameters, cache key and error;
metadata has its own table. A step's inputs and outputs are the artifacts
projection's (its consumers and artifacts): the queries read them there, as
they read artifacts, and this projection no longer writes a copy (version 7).
``described_stacks`` holds the stacks that runs recorded away from their home
store described (``run.stack_described``): the latest description of each
stack, so a run's stack has a name and components in a store whose workspace
never held it. A ``run.deleted`` tombstone removes the run's rows: the views
forget it, the log keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eventstore import (
    Event,
    MetadataLogged,
    OpenLineageReceived,
    RunDeleted,
    RunFinished,
    RunStackDescribed,
    RunStarted,
    StepFinished,
    StepStarted,
    us_from_datetime,
)

from .definition import EventContext, Handler, Op, Projection, Table, to_json
from .openlineage import RUN_TABLES, run_ops
from .row_ops import NEW, Add, Insert, Minus, RowOp, Update, Upsert, When, uuid_text

__all__ = ["STEP_STATUSES", "RunsProjection"]

#: Step statuses, each with a count column on the run (``steps_<status>``).
STEP_STATUSES = ("running", "completed", "failed", "cached", "skipped", "stopped")
_COUNT_COLUMNS = ", ".join(f"steps_{s} INTEGER NOT NULL DEFAULT 0" for s in STEP_STATUSES)
# Shared: expressions are read-only values.
_ONE_MORE_RUNNING = Add("steps_running", 1)
_ONE_LESS_RUNNING = Add("steps_running", -1)


class RunsProjection(Projection):
    """Pipeline runs and step runs, with their metadata."""

    name = "runs"
    #: v2: the newest-first index covers the position tie-break.
    #: v3: ``described_stacks`` (run.stack_described).
    #: v4: OpenLineage runs (``openlineage.py``).
    #: v5: ``run_metadata`` indexed by step_run_id (an OpenLineage event scanned it whole).
    #: v6: no negative duration for an OpenLineage run whose end is stamped before its start.
    #: v7: no ``step_inputs`` and ``step_outputs``: copies of the artifacts projection's
    #: consumers and artifacts, which a catch-up wrote twice.
    version = 7
    tables = {
        "runs": Table(
            "run_id TEXT NOT NULL, pipeline_name TEXT NOT NULL, run_name TEXT NOT NULL, "
            "stack_id TEXT, orchestrator_run_id TEXT, config TEXT NOT NULL, tags TEXT NOT NULL, "
            "status TEXT NOT NULL, started_at_us BIGINT NOT NULL, finished_at_us BIGINT, "
            f"duration_us BIGINT, error TEXT, {_COUNT_COLUMNS}, position BIGINT NOT NULL",
            "run_id",
            # (started_at_us, position) serves "newest first" without a sort step.
            (
                "started_at_us, position",
                "pipeline_name, started_at_us",
                "run_name",
                "status, started_at_us",
            ),
        ),
        "steps": Table(
            "step_run_id TEXT NOT NULL, run_id TEXT NOT NULL, step_name TEXT NOT NULL, "
            "status TEXT NOT NULL, started_at_us BIGINT NOT NULL, finished_at_us BIGINT, "
            "duration_us BIGINT, parameters TEXT NOT NULL, cache_key TEXT, "
            "upstream_steps TEXT NOT NULL, error TEXT, position BIGINT NOT NULL",
            "step_run_id",
            ("run_id, position",),
        ),
        "run_metadata": Table(
            "run_id TEXT NOT NULL, step_run_id TEXT NOT NULL, key TEXT NOT NULL, "
            "value TEXT NOT NULL, position BIGINT NOT NULL",
            "run_id, step_run_id, key",
            # The OpenLineage view rewrites a step's metadata by step_run_id.
            ("step_run_id",),
        ),
        "described_stacks": Table(
            "stack_id TEXT NOT NULL, name TEXT NOT NULL, components TEXT NOT NULL, "
            "home TEXT NOT NULL, position BIGINT NOT NULL",
            "stack_id",
        ),
        **RUN_TABLES,
    }
    retired = ("step_inputs", "step_outputs")
    derived = {
        # Every step run lineage and artifact listings name: the steps, but an
        # OpenLineage placeholder (a parent named by its children, never sent),
        # and each OpenLineage root run that sent events (it reads and writes
        # datasets itself; it has no step row, so no status here, and it comes
        # first: position 0).
        "step_names": (
            "SELECT s.step_run_id, s.run_id, s.step_name, s.status, s.position FROM {steps} s "
            "WHERE NOT EXISTS (SELECT 1 FROM {ol_run_tree} t "
            "WHERE t.run_id = s.step_run_id AND t.seen = 0) "
            "UNION ALL "
            "SELECT run_id, run_id, name, NULL, 0 FROM {ol_run_tree} "
            "WHERE run_id = root_run_id AND seen = 1"
        ),
    }

    def handlers(self) -> Mapping[type[Event], Handler]:
        """One handler per run event."""
        return {
            RunStackDescribed: self._run_stack_described,
            RunStarted: self._run_started,
            StepStarted: self._step_started,
            MetadataLogged: self._metadata_logged,
            StepFinished: self._step_finished,
            RunFinished: self._run_finished,
            RunDeleted: self._run_deleted,
            OpenLineageReceived: run_ops,
        }

    @staticmethod
    def _run_stack_described(e: RunStackDescribed, c: EventContext) -> Iterable[Op | RowOp]:
        components = [
            {"type": m.type, "flavor": m.flavor, "name": m.name, "configuration": m.configuration}
            for m in e.components
        ]
        yield Upsert(
            "described_stacks",
            {
                "stack_id": uuid_text(e.stack_id),
                "name": e.name,
                "components": to_json(components),
                "home": e.home,
                "position": c.position,
            },
            {"name": NEW, "components": NEW, "home": NEW, "position": NEW},
        )

    @staticmethod
    def _run_started(e: RunStarted, c: EventContext) -> Iterable[Op | RowOp]:
        yield Insert(
            "runs",
            {
                "run_id": uuid_text(e.run_id),
                "pipeline_name": e.pipeline_name,
                "run_name": e.run_name,
                "stack_id": None if e.stack_id is None else uuid_text(e.stack_id),
                "orchestrator_run_id": e.orchestrator_run_id,
                "config": to_json(e.config),
                "tags": to_json(e.tags),
                "status": "running",
                "started_at_us": us_from_datetime(e.started_at),
                "position": c.position,
            },
        )

    @staticmethod
    def _step_started(e: StepStarted, c: EventContext) -> Iterable[Op | RowOp]:
        run_id = uuid_text(e.run_id)
        yield Insert(
            "steps",
            {
                "step_run_id": uuid_text(e.step_run_id),
                "run_id": run_id,
                "step_name": e.step_name,
                "status": "running",
                "started_at_us": us_from_datetime(e.started_at),
                "parameters": to_json(e.parameters),
                "cache_key": e.cache_key,
                "upstream_steps": to_json(e.upstream_steps),
                "position": c.position,
            },
        )
        yield Update("runs", run_id, {"steps_running": _ONE_MORE_RUNNING})

    @staticmethod
    def _metadata_logged(e: MetadataLogged, c: EventContext) -> Iterable[Op | RowOp]:
        run_id = uuid_text(e.run_id)
        step = "" if e.step_run_id is None else uuid_text(e.step_run_id)
        for key, value in e.values.items():
            yield Upsert(
                "run_metadata",
                {
                    "run_id": run_id,
                    "step_run_id": step,
                    "key": key,
                    "value": to_json(value),
                    "position": c.position,
                },
                {"value": NEW, "position": NEW},
            )

    @staticmethod
    def _step_finished(e: StepFinished, c: EventContext) -> Iterable[Op | RowOp]:
        step_run_id = uuid_text(e.step_run_id)
        finished = us_from_datetime(e.finished_at)
        # Counts first, and only if the step still runs: a step finishing twice
        # (possible through raw appends) must not count twice.
        column = f"steps_{e.status}"
        yield Update(
            "runs",
            uuid_text(e.run_id),
            {"steps_running": _ONE_LESS_RUNNING, column: Add(column, 1)},
            When("steps", step_run_id, "status", "running"),
        )
        yield Update(
            "steps",
            step_run_id,
            {
                "status": e.status,
                "finished_at_us": finished,
                "duration_us": Minus(finished, "started_at_us"),
                "error": e.error,
            },
        )

    @staticmethod
    def _run_finished(e: RunFinished, c: EventContext) -> Iterable[Op | RowOp]:
        finished = us_from_datetime(e.finished_at)
        yield Update(
            "runs",
            uuid_text(e.run_id),
            {
                "status": e.status,
                "finished_at_us": finished,
                "duration_us": Minus(finished, "started_at_us"),
                "error": e.error,
            },
        )

    @staticmethod
    def _run_deleted(e: RunDeleted, c: EventContext) -> Iterable[Op]:
        run_id = str(e.run_id)
        for table in ("runs", "steps", "run_metadata"):
            yield (f"DELETE FROM {{{table}}} WHERE run_id = ?", (run_id,))
