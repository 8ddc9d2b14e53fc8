"""The ``artifacts`` projection: artifacts, their producers and consumers, and lineage edges.

Each ``artifact_name`` gets increasing versions (model v1, v2...). Lineage is a
bipartite graph of step runs and artifacts: a ``produced`` edge from a step to
each artifact it wrote, a ``consumed`` edge from an artifact to each step that
read it. Its handlers never read another projection's tables (each
projection can be rebuilt or fail alone); its queries name steps and runs
from the ``runs`` projection's views (``step_names``, ``runs``), as they read
a step's status there.

The edges are not stored: ``lineage_edges`` is a view over ``artifacts`` (the
produced edges) and ``artifact_consumers`` (the consumed ones). Storing them,
and copies of the runs' and steps' names, wrote each fact twice: a catch-up
spent a quarter of its time on the copies (version 5 has none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eventstore import (
    ArtifactConsumed,
    ArtifactProduced,
    Event,
    OpenLineageReceived,
    RunDeleted,
)

from .definition import EventContext, Handler, Op, Projection, Table, to_json
from .openlineage_artifacts import ARTIFACT_TABLES, artifact_ops
from .row_ops import NEW, Add, Insert, Ref, RowOp, Upsert, uuid_text

_NEXT_VERSION = Add("last_version", 1)

__all__ = ["ArtifactsProjection"]


class ArtifactsProjection(Projection):
    """Artifacts with versions, producers, consumers, and the lineage graph."""

    name = "artifacts"
    #: v2: OpenLineage datasets (``openlineage.py``); v3: the index that picks the
    #: version an OpenLineage reader read (``name, created_at_us, artifact_id``);
    #: v4: ``lineage_edges`` derived from the artifacts and their consumers;
    #: v5: no ``artifact_steps`` and ``artifact_runs`` (the runs projection's names).
    version = 5
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
                # What a step produced: lineage downstream of a step.
                "step_run_id",
            ),
        ),
        "artifact_consumers": Table(
            "step_run_id TEXT NOT NULL, input_name TEXT NOT NULL, artifact_id TEXT NOT NULL, "
            "run_id TEXT NOT NULL, position BIGINT NOT NULL",
            "step_run_id, input_name",
            ("artifact_id", "run_id"),
        ),
        "artifact_versions": Table(
            "name TEXT NOT NULL, last_version INTEGER NOT NULL",
            "name",
        ),
        **ARTIFACT_TABLES,
    }
    derived = {
        # A step produced each artifact it wrote (a dataset's source artifact, which
        # no run wrote, has no producer); each consumer read its artifact, while
        # that artifact is held (a deleted run's artifacts lose their readers' edges).
        "lineage_edges": (
            "SELECT step_run_id AS source_id, 'step' AS source_kind, artifact_id AS target_id, "
            "'artifact' AS target_kind, output_name AS name, run_id, position "
            "FROM {artifacts} WHERE step_run_id <> '' "
            "UNION ALL "
            "SELECT c.artifact_id, 'artifact', c.step_run_id, 'step', c.input_name, c.run_id, "
            "c.position FROM {artifact_consumers} c "
            "WHERE EXISTS (SELECT 1 FROM {artifacts} a WHERE a.artifact_id = c.artifact_id)"
        ),
    }
    retired = ("lineage_edges", "artifact_steps", "artifact_runs")

    def handlers(self) -> Mapping[type[Event], Handler]:
        """Handlers for the artifact events lineage needs."""
        return {
            ArtifactProduced: self._produced,
            ArtifactConsumed: self._consumed,
            RunDeleted: self._run_deleted,
            OpenLineageReceived: artifact_ops,
        }

    @staticmethod
    def _produced(e: ArtifactProduced, c: EventContext) -> Iterable[Op | RowOp]:
        artifact_id = uuid_text(e.artifact_id)
        step_run_id = uuid_text(e.step_run_id)
        run_id = uuid_text(e.run_id)
        name = e.artifact_name
        # Versions count per name in their own table, which deletions never touch:
        # a version number names one artifact forever, even after its run is deleted.
        yield Upsert(
            "artifact_versions", {"name": name, "last_version": 1}, {"last_version": _NEXT_VERSION}
        )
        yield Insert(
            "artifacts",
            {
                "artifact_id": artifact_id,
                "name": name,
                "version": Ref("artifact_versions", name, "last_version"),
                "uri": e.uri,
                "artifact_type": e.artifact_type,
                "data_type": e.data_type,
                "materializer": e.materializer,
                "content_hash": e.content_hash,
                "size_bytes": e.size_bytes,
                "metadata": to_json(e.metadata),
                "run_id": run_id,
                "step_run_id": step_run_id,
                "output_name": e.output_name,
                "created_at_us": c.recorded_at_us,
                "position": c.position,
            },
        )

    @staticmethod
    def _consumed(e: ArtifactConsumed, c: EventContext) -> Iterable[Op | RowOp]:
        artifact_id = uuid_text(e.artifact_id)
        step_run_id = uuid_text(e.step_run_id)
        run_id = uuid_text(e.run_id)
        yield Upsert(
            "artifact_consumers",
            {
                "step_run_id": step_run_id,
                "input_name": e.input_name,
                "artifact_id": artifact_id,
                "run_id": run_id,
                "position": c.position,
            },
            {"artifact_id": NEW, "position": NEW},
        )

    @staticmethod
    def _run_deleted(e: RunDeleted, c: EventContext) -> Iterable[Op]:
        run_id = str(e.run_id)
        for table in ("artifacts", "artifact_consumers"):
            yield (f"DELETE FROM {{{table}}} WHERE run_id = ?", (run_id,))
