"""Lineage queries: the graph of steps and artifacts around an artifact or a run."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from projections.errors import QueryError
from projections.transactions import Fetch, Tx

from .artifacts import _resolve_artifact
from .common import ViewsReader
from .runs import _resolve_run

Direction = Literal["upstream", "downstream", "both"]


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


def _walk(roots: list[str], direction: Direction, depth: int) -> Tx[LineageGraph]:
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
    nodes = yield from _nodes(distance)
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


def _nodes(distance: dict[str, int]) -> Tx[list[LineageNode]]:
    ids = list(distance)
    nodes: dict[str, LineageNode] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        artifacts = yield Fetch(
            "SELECT a.artifact_id, a.name, a.version, a.run_id, r.run_name FROM artifacts a "
            "LEFT JOIN runs r ON r.run_id = a.run_id "
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
            "SELECT st.step_run_id, st.step_name, st.run_id, r.run_name, st.status "
            "FROM step_names st LEFT JOIN runs r ON r.run_id = st.run_id "
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


class LineageQueries(ViewsReader):
    """Queries of lineage."""

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
                row = yield from _resolve_artifact(artifact)
                roots = [str(row[0])]
            else:
                assert run is not None
                row = yield from _resolve_run(run)
                steps = yield Fetch(
                    "SELECT step_run_id FROM step_names WHERE run_id = ? "
                    "ORDER BY position, step_run_id",
                    (row[0],),
                )
                roots = [str(s) for (s,) in steps]
            graph = yield from _walk(roots, direction, depth)
            return graph

        result: LineageGraph = await self.views.read(body)
        return result
