"""The ``artifacts`` projection: artifacts, their producers and consumers, and lineage edges.

Each ``artifact_name`` gets increasing versions (model v1, v2...). Lineage is a
bipartite graph of step runs and artifacts: a ``produced`` edge from a step to
each artifact it wrote, a ``consumed`` edge from an artifact to each step that
read it. The projection keeps its own small tables of step and run names, so
it never reads another projection's tables (each projection can be rebuilt or
fail alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eventstore import (
    ArtifactConsumed,
    ArtifactProduced,
    Event,
    OpenLineageReceived,
    RunDeleted,
    RunStarted,
    StepStarted,
)

from .definition import EventContext, Handler, Op, Projection, Table, to_json
from .openlineage_artifacts import ARTIFACT_TABLES, artifact_ops

__all__ = ["ArtifactsProjection"]


class ArtifactsProjection(Projection):
    """Artifacts with versions, producers, consumers, and the lineage graph."""

    name = "artifacts"
    #: v2: OpenLineage datasets (``openlineage.py``); v3: the index that picks the
    #: version an OpenLineage reader read (``name, created_at_us, artifact_id``).
    version = 3
    tables = {
        "artifacts": Table(
            "artifact_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, "
            "uri TEXT NOT NULL, artifact_type TEXT NOT NULL, data_type TEXT, materializer TEXT, "
            "content_hash TEXT, size_bytes BIGINT, metadata TEXT NOT NULL, run_id TEXT NOT NULL, "
            "step_run_id TEXT NOT NULL, output_name TEXT NOT NULL, created_at_us BIGINT NOT NULL, "
            "position BIGINT NOT NULL",
            "artifact_id",
            (
                "name, version",
                "run_id",
                "artifact_type, position",
                "position",
                # The newest version of a name by a time: OpenLineage relinking.
                "name, created_at_us, artifact_id",
            ),
        ),
        "artifact_consumers": Table(
            "step_run_id TEXT NOT NULL, input_name TEXT NOT NULL, artifact_id TEXT NOT NULL, "
            "run_id TEXT NOT NULL, position BIGINT NOT NULL",
            "step_run_id, input_name",
            ("artifact_id", "run_id"),
        ),
        "artifact_steps": Table(
            "step_run_id TEXT NOT NULL, run_id TEXT NOT NULL, step_name TEXT NOT NULL",
            "step_run_id",
            ("run_id",),
        ),
        "artifact_versions": Table(
            "name TEXT NOT NULL, last_version INTEGER NOT NULL",
            "name",
        ),
        **ARTIFACT_TABLES,
        "artifact_runs": Table(
            "run_id TEXT NOT NULL, pipeline_name TEXT NOT NULL, run_name TEXT NOT NULL",
            "run_id",
        ),
        "lineage_edges": Table(
            "source_id TEXT NOT NULL, source_kind TEXT NOT NULL, target_id TEXT NOT NULL, "
            "target_kind TEXT NOT NULL, name TEXT NOT NULL, run_id TEXT NOT NULL, "
            "position BIGINT NOT NULL",
            "source_id, target_id, name",
            ("target_id", "run_id"),
        ),
    }

    def handlers(self) -> Mapping[type[Event], Handler]:
        """Handlers for the run, step and artifact events lineage needs."""
        return {
            RunStarted: self._run_started,
            StepStarted: self._step_started,
            ArtifactProduced: self._produced,
            ArtifactConsumed: self._consumed,
            RunDeleted: self._run_deleted,
            OpenLineageReceived: artifact_ops,
        }

    @staticmethod
    def _run_started(e: RunStarted, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {artifact_runs} (run_id, pipeline_name, run_name) VALUES (?, ?, ?)",
            (str(e.run_id), e.pipeline_name, e.run_name),
        )

    @staticmethod
    def _step_started(e: StepStarted, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {artifact_steps} (step_run_id, run_id, step_name) VALUES (?, ?, ?)",
            (str(e.step_run_id), str(e.run_id), e.step_name),
        )

    @staticmethod
    def _produced(e: ArtifactProduced, c: EventContext) -> Iterable[Op]:
        artifact_id = str(e.artifact_id)
        step_run_id = str(e.step_run_id)
        run_id = str(e.run_id)
        # Versions count per name in their own table, which deletions never touch:
        # a version number names one artifact forever, even after its run is deleted.
        yield (
            "INSERT INTO {artifact_versions} (name, last_version) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET last_version = {artifact_versions}.last_version + 1",
            (e.artifact_name,),
        )
        yield (
            "INSERT INTO {artifacts} (artifact_id, name, version, uri, artifact_type, data_type, "
            "materializer, content_hash, size_bytes, metadata, run_id, step_run_id, output_name, "
            "created_at_us, position) VALUES (?, ?, (SELECT last_version FROM "
            "{artifact_versions} WHERE name = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                artifact_id,
                e.artifact_name,
                e.artifact_name,
                e.uri,
                e.artifact_type,
                e.data_type,
                e.materializer,
                e.content_hash,
                e.size_bytes,
                to_json(e.metadata),
                run_id,
                step_run_id,
                e.output_name,
                c.recorded_at_us,
                c.position,
            ),
        )
        yield (
            "INSERT INTO {lineage_edges} (source_id, source_kind, target_id, target_kind, name, "
            "run_id, position) VALUES (?, 'step', ?, 'artifact', ?, ?, ?) "
            "ON CONFLICT (source_id, target_id, name) DO NOTHING",
            (step_run_id, artifact_id, e.output_name, run_id, c.position),
        )

    @staticmethod
    def _consumed(e: ArtifactConsumed, c: EventContext) -> Iterable[Op]:
        artifact_id = str(e.artifact_id)
        step_run_id = str(e.step_run_id)
        run_id = str(e.run_id)
        yield (
            "INSERT INTO {artifact_consumers} (step_run_id, input_name, artifact_id, run_id, "
            "position) VALUES (?, ?, ?, ?, ?) ON CONFLICT (step_run_id, input_name) "
            "DO UPDATE SET artifact_id = excluded.artifact_id, position = excluded.position",
            (step_run_id, e.input_name, artifact_id, run_id, c.position),
        )
        yield (
            "INSERT INTO {lineage_edges} (source_id, source_kind, target_id, target_kind, name, "
            "run_id, position) VALUES (?, 'artifact', ?, 'step', ?, ?, ?) "
            "ON CONFLICT (source_id, target_id, name) DO NOTHING",
            (artifact_id, step_run_id, e.input_name, run_id, c.position),
        )

    @staticmethod
    def _run_deleted(e: RunDeleted, c: EventContext) -> Iterable[Op]:
        run_id = str(e.run_id)
        # Other runs' reads of this run's artifacts lose their edges too: no edge
        # may point at a forgotten artifact.
        yield (
            "DELETE FROM {lineage_edges} WHERE source_id IN "
            "(SELECT artifact_id FROM {artifacts} WHERE run_id = ?)",
            (run_id,),
        )
        tables = ("artifacts", "artifact_consumers", "artifact_steps", "artifact_runs")
        for table in (*tables, "lineage_edges"):
            yield (f"DELETE FROM {{{table}}} WHERE run_id = ?", (run_id,))
