"""Read queries over the views: components, stacks, runs, steps, artifacts, lineage, history.

Every query runs in one read snapshot of the views store (a generator of
``Fetch`` requests), binds every value it receives (names, filters, prefixes
never reach SQL as text), and returns msgspec Structs that the CLI renders as
tables or JSON. The same queries answer on live views and on a scratch store
replayed to a past position (``as of``).

One module per noun (components, stacks, pipelines, runs, artifacts, lineage),
each with its result Structs and a mixin of its queries; ``Queries`` joins them
and adds the summary and the history, which span every noun.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from eventstore import WORKSPACE_STREAM, RecordedEvent, artifact_event_id, run_stream
from projections.errors import QueryError, ViewNotFoundError
from projections.transactions import Fetch, Tx

from .artifacts import ArtifactQueries, ArtifactView, ConsumerView
from .common import MIN_ID_PREFIX, _check_ref, _uuid
from .components import ComponentQueries, ComponentView
from .lineage import LineageEdge, LineageGraph, LineageNode, LineageQueries
from .openlineage import (
    OLDataset,
    OLDatasetVersion,
    OLEvents,
    OLGraphNode,
    OLJob,
    OLNamespace,
    OLRun,
    OpenLineageQueries,
)
from .pipelines import PipelineQueries, PipelineView
from .runs import RunQueries, RunView, StepView
from .stacks import ComponentRef, StackQueries, StackView

__all__ = [
    "MIN_ID_PREFIX",
    "ArtifactView",
    "ComponentRef",
    "ComponentView",
    "ConsumerView",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "OLDataset",
    "OLDatasetVersion",
    "OLEvents",
    "OLGraphNode",
    "OLJob",
    "OLNamespace",
    "OLRun",
    "PipelineView",
    "Queries",
    "RunView",
    "StackView",
    "StepView",
    "Summary",
]


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of what the views hold: for ``replay`` and ``store describe``."""

    components: int
    stacks: int
    active_stack: str | None
    runs: dict[str, int]
    steps: int
    artifacts: int


class Queries(
    ComponentQueries,
    StackQueries,
    PipelineQueries,
    RunQueries,
    ArtifactQueries,
    LineageQueries,
    OpenLineageQueries,
):
    """The read side over one views store (live, or replayed as of a position)."""

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
            # An OpenLineage run is built from the raw events of every run in its tree
            # (its own, its tasks', their child jobs'), each run in its own stream.
            tree = await self.views.fetch(
                "SELECT run_id FROM ol_run_tree WHERE root_run_id = ? OR run_id = ?",
                (run.run_id, run.run_id),
            )
            streams = [run_stream(_uuid(run.run_id))]
            streams += [f"openlineage-run-{run_id}" for (run_id,) in dict.fromkeys(tree)]
            events = [e for stream in streams async for e in store.read_stream(stream)]
            return sorted(events, key=lambda e: e.position)
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
