"""The ``runs`` projection: pipeline runs and their step runs.

A run row carries its status, times, duration, error and step counts by
status; a step row its status, times, parameters, cache key and error; inputs,
outputs and metadata have their own tables. ``described_stacks`` holds the
stacks that runs recorded away from their home store described
(``run.stack_described``): the latest description of each stack, so a run's
stack has a name and components in a store whose workspace never held it. A
``run.deleted`` tombstone removes the run's rows: the views forget it, the log
keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eventstore import (
    ArtifactConsumed,
    ArtifactProduced,
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

__all__ = ["STEP_STATUSES", "RunsProjection"]

#: Step statuses, each with a count column on the run (``steps_<status>``).
STEP_STATUSES = ("running", "completed", "failed", "cached", "skipped", "stopped")
_COUNT_COLUMNS = ", ".join(f"steps_{s} INTEGER NOT NULL DEFAULT 0" for s in STEP_STATUSES)


class RunsProjection(Projection):
    """Pipeline runs and step runs, with inputs, outputs and metadata."""

    name = "runs"
    #: v2: the newest-first index covers the position tie-break.
    #: v3: ``described_stacks`` (run.stack_described).
    #: v4: OpenLineage runs (``openlineage.py``).
    #: v5: ``run_metadata`` indexed by step_run_id (an OpenLineage event scanned it whole).
    #: v6: no negative duration for an OpenLineage run whose end is stamped before its start.
    version = 6
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
        "step_inputs": Table(
            "step_run_id TEXT NOT NULL, input_name TEXT NOT NULL, artifact_id TEXT NOT NULL, "
            "run_id TEXT NOT NULL",
            "step_run_id, input_name",
            ("run_id",),
        ),
        "step_outputs": Table(
            "step_run_id TEXT NOT NULL, output_name TEXT NOT NULL, artifact_id TEXT NOT NULL, "
            "run_id TEXT NOT NULL",
            "step_run_id, output_name",
            ("run_id",),
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

    def handlers(self) -> Mapping[type[Event], Handler]:
        """One handler per run event."""
        return {
            RunStackDescribed: self._run_stack_described,
            RunStarted: self._run_started,
            StepStarted: self._step_started,
            ArtifactConsumed: self._artifact_consumed,
            ArtifactProduced: self._artifact_produced,
            MetadataLogged: self._metadata_logged,
            StepFinished: self._step_finished,
            RunFinished: self._run_finished,
            RunDeleted: self._run_deleted,
            OpenLineageReceived: run_ops,
        }

    @staticmethod
    def _run_stack_described(e: RunStackDescribed, c: EventContext) -> Iterable[Op]:
        components = [
            {"type": m.type, "flavor": m.flavor, "name": m.name, "configuration": m.configuration}
            for m in e.components
        ]
        yield (
            "INSERT INTO {described_stacks} (stack_id, name, components, home, position) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (stack_id) DO UPDATE SET name = excluded.name, "
            "components = excluded.components, home = excluded.home, position = excluded.position",
            (str(e.stack_id), e.name, to_json(components), e.home, c.position),
        )

    @staticmethod
    def _run_started(e: RunStarted, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {runs} (run_id, pipeline_name, run_name, stack_id, orchestrator_run_id, "
            "config, tags, status, started_at_us, position) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            (
                str(e.run_id),
                e.pipeline_name,
                e.run_name,
                None if e.stack_id is None else str(e.stack_id),
                e.orchestrator_run_id,
                to_json(e.config),
                to_json(e.tags),
                us_from_datetime(e.started_at),
                c.position,
            ),
        )

    @staticmethod
    def _step_started(e: StepStarted, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {steps} (step_run_id, run_id, step_name, status, started_at_us, "
            "parameters, cache_key, upstream_steps, position) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (
                str(e.step_run_id),
                str(e.run_id),
                e.step_name,
                us_from_datetime(e.started_at),
                to_json(e.parameters),
                e.cache_key,
                to_json(e.upstream_steps),
                c.position,
            ),
        )
        yield (
            "UPDATE {runs} SET steps_running = steps_running + 1 WHERE run_id = ?",
            (str(e.run_id),),
        )

    @staticmethod
    def _artifact_consumed(e: ArtifactConsumed, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {step_inputs} (step_run_id, input_name, artifact_id, run_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (step_run_id, input_name) "
            "DO UPDATE SET artifact_id = excluded.artifact_id",
            (str(e.step_run_id), e.input_name, str(e.artifact_id), str(e.run_id)),
        )

    @staticmethod
    def _artifact_produced(e: ArtifactProduced, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {step_outputs} (step_run_id, output_name, artifact_id, run_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (step_run_id, output_name) "
            "DO UPDATE SET artifact_id = excluded.artifact_id",
            (str(e.step_run_id), e.output_name, str(e.artifact_id), str(e.run_id)),
        )

    @staticmethod
    def _metadata_logged(e: MetadataLogged, c: EventContext) -> Iterable[Op]:
        step = "" if e.step_run_id is None else str(e.step_run_id)
        for key, value in e.values.items():
            yield (
                "INSERT INTO {run_metadata} (run_id, step_run_id, key, value, position) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, step_run_id, key) "
                "DO UPDATE SET value = excluded.value, position = excluded.position",
                (str(e.run_id), step, key, to_json(value), c.position),
            )

    @staticmethod
    def _step_finished(e: StepFinished, c: EventContext) -> Iterable[Op]:
        step_run_id = str(e.step_run_id)
        finished = us_from_datetime(e.finished_at)
        # Counts first, and only if the step still runs: a step finishing twice
        # (possible through raw appends) must not count twice.
        yield (
            f"UPDATE {{runs}} SET steps_running = steps_running - 1, "
            f"steps_{e.status} = steps_{e.status} + 1 WHERE run_id = ? AND EXISTS "
            "(SELECT 1 FROM {steps} WHERE step_run_id = ? AND status = 'running')",
            (str(e.run_id), step_run_id),
        )
        yield (
            "UPDATE {steps} SET status = ?, finished_at_us = ?, duration_us = ? - started_at_us, "
            "error = ? WHERE step_run_id = ?",
            (e.status, finished, finished, e.error, step_run_id),
        )

    @staticmethod
    def _run_finished(e: RunFinished, c: EventContext) -> Iterable[Op]:
        finished = us_from_datetime(e.finished_at)
        yield (
            "UPDATE {runs} SET status = ?, finished_at_us = ?, duration_us = ? - started_at_us, "
            "error = ? WHERE run_id = ?",
            (e.status, finished, finished, e.error, str(e.run_id)),
        )

    @staticmethod
    def _run_deleted(e: RunDeleted, c: EventContext) -> Iterable[Op]:
        run_id = str(e.run_id)
        for table in ("runs", "steps", "step_inputs", "step_outputs", "run_metadata"):
            yield (f"DELETE FROM {{{table}}} WHERE run_id = ?", (run_id,))
