"""Queries through real stores: lineage, runs, steps, artifacts, stacks, deletion, history.

Every test records its data with the write API (or the demo orchestrator), opens
the live views, catches up, and asks ``views.query``: the same path the CLI takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventstore import (
    EventStore,
    PipelineRun,
    StepFinished,
    StepStarted,
    artifact_event_id,
    open_store,
    run_stream,
    us_from_datetime,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from projections import (
    ConsumerView,
    LineageGraph,
    Queries,
    QueryError,
    ViewNotFoundError,
    Views,
    default_projections,
    open_views,
)

from .histories import dump

Node = tuple[str, str, str, int]
"""A lineage node as compared here: (id, kind, label, depth)."""
Edge = tuple[str, str, str, str]
"""A lineage edge as compared here: (source, target, kind, name)."""

#: Steps and artifacts recorded by one run of the demo DAG.
DEMO_STEPS = 7
DEMO_ARTIFACTS = 7


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[tuple[EventStore, Views]]:
    """A fresh store, without the default stack (each test records its own), and its views."""
    async with open_store(tmp_path / "s", default_stack=False) as store, open_views(store) as views:
        yield store, views


async def record_step(
    run: PipelineRun,
    name: str,
    *,
    inputs: dict[str, UUID] | None = None,
    outputs: Sequence[str] = (),
) -> tuple[str, dict[str, str]]:
    """Run one completed step consuming ``inputs`` and producing an artifact per output.

    Each artifact is named after its output. Returns the step run id and the
    produced artifact ids by output name, as text (as the views show them).
    """
    step = await run.start_step(name)
    for input_name, artifact_id in (inputs or {}).items():
        await step.consume(input_name, artifact_id)
    produced: dict[str, str] = {}
    for output in outputs:
        artifact_id = await step.produce(output, uri=f"file:///{name}/{output}", name=output)
        produced[output] = str(artifact_id)
    await step.finish()
    return str(step.step_run_id), produced


def nodes_of(graph: LineageGraph) -> set[Node]:
    """The graph's nodes, checking none is listed twice."""
    nodes: set[Node] = {(n.id, n.kind, n.label, n.depth) for n in graph.nodes}
    assert len(graph.nodes) == len(nodes)
    return nodes


def edges_of(graph: LineageGraph) -> set[Edge]:
    """The graph's edges, checking none is listed twice."""
    edges: set[Edge] = {(e.source, e.target, e.kind, e.name) for e in graph.edges}
    assert len(graph.edges) == len(edges)
    return edges


# -- lineage -------------------------------------------------------------------------


class Diamond:
    """Steps A, B, C, D in one run: A writes a; B and C read a, write b and c; D reads both."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids

    @classmethod
    async def record(cls, store: EventStore) -> Diamond:
        """Record the diamond; node ids by label (steps upper case, artifacts lower case)."""
        run = await store.start_run("diamond", run_name="diamond-1")
        ids: dict[str, str] = {}
        ids["A"], out = await record_step(run, "A", outputs=["a"])
        a = UUID(out["a"])
        ids["B"], out_b = await record_step(run, "B", inputs={"in": a}, outputs=["b"])
        ids["C"], out_c = await record_step(run, "C", inputs={"in": a}, outputs=["c"])
        inputs = {"left": UUID(out_b["b"]), "right": UUID(out_c["c"])}
        ids["D"], out_d = await record_step(run, "D", inputs=inputs, outputs=["d"])
        await run.finish()
        return cls({**ids, **out, **out_b, **out_c, **out_d})

    def node(self, label: str, depth: int) -> Node:
        """The expected node of a label at a depth."""
        if label.isupper():
            return (self.ids[label], "step", label, depth)
        return (self.ids[label], "artifact", f"{label}:v1", depth)

    def produced(self, step: str, artifact: str) -> Edge:
        """The expected edge from a step to the artifact it wrote."""
        return (self.ids[step], self.ids[artifact], "produced", artifact)

    def consumed(self, artifact: str, step: str, input_name: str) -> Edge:
        """The expected edge from an artifact to a step that read it."""
        return (self.ids[artifact], self.ids[step], "consumed", input_name)


class Chain:
    """Steps s0..s9 in one run: s0 writes c0; each s<i> reads c<i-1> and writes c<i>."""

    LENGTH = 10

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids

    @classmethod
    async def record(cls, store: EventStore) -> Chain:
        """Record the chain; node ids by label (s<i> steps, c<i> artifacts)."""
        run = await store.start_run("chain", run_name="chain-1")
        ids: dict[str, str] = {}
        previous: UUID | None = None
        for i in range(cls.LENGTH):
            inputs = {} if previous is None else {"in": previous}
            ids[f"s{i}"], out = await record_step(run, f"s{i}", inputs=inputs, outputs=[f"c{i}"])
            ids[f"c{i}"] = out[f"c{i}"]
            previous = UUID(out[f"c{i}"])
        await run.finish()
        return cls(ids)

    def node(self, label: str, depth: int) -> Node:
        """The expected node of a label at a depth."""
        if label.startswith("s"):
            return (self.ids[label], "step", label, depth)
        return (self.ids[label], "artifact", f"{label}:v1", depth)

    def produced(self, i: int) -> Edge:
        """s<i> wrote c<i>."""
        return (self.ids[f"s{i}"], self.ids[f"c{i}"], "produced", f"c{i}")

    def consumed(self, i: int) -> Edge:
        """s<i> read c<i-1>."""
        return (self.ids[f"c{i - 1}"], self.ids[f"s{i}"], "consumed", "in")


class TestLineageDiamond:
    """Lineage on a diamond DAG: every node and edge, each at its step-hop depth."""

    async def test_upstream_from_the_bottom(self, tmp_path: Path) -> None:
        """Upstream of d: D and its inputs b, c at depth 1; B, C and a at 2; A at 3; the
        graph ends there, so it is not truncated."""
        async with opened(tmp_path) as (store, views):
            g = await Diamond.record(store)
            await views.catch_up()
            graph = await views.query.lineage(artifact=g.ids["d"], direction="upstream")
        assert ([g.ids["d"]], "upstream", 3) == (graph.roots, graph.direction, graph.depth)
        assert {
            g.node("d", 0),
            g.node("D", 1),
            g.node("b", 1),
            g.node("c", 1),
            g.node("B", 2),
            g.node("C", 2),
            g.node("a", 2),
            g.node("A", 3),
        } == nodes_of(graph)
        assert {
            g.produced("D", "d"),
            g.consumed("b", "D", "left"),
            g.consumed("c", "D", "right"),
            g.produced("B", "b"),
            g.produced("C", "c"),
            g.consumed("a", "B", "in"),
            g.consumed("a", "C", "in"),
            g.produced("A", "a"),
        } == edges_of(graph)
        assert graph.truncated is False

    async def test_downstream_from_the_top(self, tmp_path: Path) -> None:
        """Downstream of a: B, C and their outputs at depth 1; D and d at 2; not truncated."""
        async with opened(tmp_path) as (store, views):
            g = await Diamond.record(store)
            await views.catch_up()
            graph = await views.query.lineage(artifact=g.ids["a"], direction="downstream")
        assert {
            g.node("a", 0),
            g.node("B", 1),
            g.node("C", 1),
            g.node("b", 1),
            g.node("c", 1),
            g.node("D", 2),
            g.node("d", 2),
        } == nodes_of(graph)
        assert {
            g.consumed("a", "B", "in"),
            g.consumed("a", "C", "in"),
            g.produced("B", "b"),
            g.produced("C", "c"),
            g.consumed("b", "D", "left"),
            g.consumed("c", "D", "right"),
            g.produced("D", "d"),
        } == edges_of(graph)
        assert graph.truncated is False

    async def test_both_directions_from_a_side(self, tmp_path: Path) -> None:
        """Both ways from b: its producer chain up to A, and its consumer D with d; the
        sibling branch (C, c) is neither upstream nor downstream of b."""
        async with opened(tmp_path) as (store, views):
            g = await Diamond.record(store)
            await views.catch_up()
            graph = await views.query.lineage(artifact=g.ids["b"])
        assert "both" == graph.direction
        assert {
            g.node("b", 0),
            g.node("B", 1),
            g.node("a", 1),
            g.node("A", 2),
            g.node("D", 1),
            g.node("d", 1),
        } == nodes_of(graph)
        assert {
            g.produced("B", "b"),
            g.consumed("a", "B", "in"),
            g.produced("A", "a"),
            g.consumed("b", "D", "left"),
            g.produced("D", "d"),
        } == edges_of(graph)
        assert graph.truncated is False

    async def test_nodes_and_edges_come_in_a_stable_order(self, tmp_path: Path) -> None:
        """Nodes are ordered by depth, kind, label; edges by source, target, name."""
        async with opened(tmp_path) as (store, views):
            g = await Diamond.record(store)
            await views.catch_up()
            graph = await views.query.lineage(artifact=g.ids["d"], direction="upstream")
        assert ["d:v1", "b:v1", "c:v1", "D", "a:v1", "B", "C", "A"] == [
            n.label for n in graph.nodes
        ]
        assert sorted(graph.edges, key=lambda e: (e.source, e.target, e.name)) == graph.edges


class TestLineageDepth:
    """Depth counts step-hops (two edges each); beyond it the graph says it is truncated."""

    async def test_upstream_stops_at_the_depth(self, tmp_path: Path) -> None:
        """Upstream of c9 at depth 3: three producing steps and their inputs, truncated."""
        async with opened(tmp_path) as (store, views):
            chain = await Chain.record(store)
            await views.catch_up()
            graph = await views.query.lineage(
                artifact=chain.ids["c9"], direction="upstream", depth=3
            )
        assert {
            chain.node("c9", 0),
            chain.node("s9", 1),
            chain.node("c8", 1),
            chain.node("s8", 2),
            chain.node("c7", 2),
            chain.node("s7", 3),
            chain.node("c6", 3),
        } == nodes_of(graph)
        assert {
            chain.produced(9),
            chain.consumed(9),
            chain.produced(8),
            chain.consumed(8),
            chain.produced(7),
            chain.consumed(7),
        } == edges_of(graph)
        assert graph.truncated is True

    async def test_downstream_stops_at_the_depth(self, tmp_path: Path) -> None:
        """Downstream of c0 at depth 3: three consuming steps and their outputs, truncated."""
        async with opened(tmp_path) as (store, views):
            chain = await Chain.record(store)
            await views.catch_up()
            graph = await views.query.lineage(
                artifact=chain.ids["c0"], direction="downstream", depth=3
            )
        assert {
            chain.node("c0", 0),
            chain.node("s1", 1),
            chain.node("c1", 1),
            chain.node("s2", 2),
            chain.node("c2", 2),
            chain.node("s3", 3),
            chain.node("c3", 3),
        } == nodes_of(graph)
        assert {
            chain.consumed(1),
            chain.produced(1),
            chain.consumed(2),
            chain.produced(2),
            chain.consumed(3),
            chain.produced(3),
        } == edges_of(graph)
        assert graph.truncated is True

    async def test_both_directions_stop_at_the_depth(self, tmp_path: Path) -> None:
        """Both ways from c5 at depth 2: two step-hops up and two down, truncated."""
        async with opened(tmp_path) as (store, views):
            chain = await Chain.record(store)
            await views.catch_up()
            graph = await views.query.lineage(artifact=chain.ids["c5"], depth=2)
        assert {
            chain.node("c5", 0),
            chain.node("s5", 1),
            chain.node("c4", 1),
            chain.node("s4", 2),
            chain.node("c3", 2),
            chain.node("s6", 1),
            chain.node("c6", 1),
            chain.node("s7", 2),
            chain.node("c7", 2),
        } == nodes_of(graph)
        assert {
            chain.produced(5),
            chain.consumed(5),
            chain.produced(4),
            chain.consumed(4),
            chain.consumed(6),
            chain.produced(6),
            chain.consumed(7),
            chain.produced(7),
        } == edges_of(graph)
        assert graph.truncated is True

    async def test_a_depth_reaching_the_start_is_not_truncated(self, tmp_path: Path) -> None:
        """Upstream of c2 at depth 3 reaches s0, which read nothing: the whole history,
        not truncated; at depth 2 the same walk misses s0 and is truncated."""
        async with opened(tmp_path) as (store, views):
            chain = await Chain.record(store)
            await views.catch_up()
            whole = await views.query.lineage(
                artifact=chain.ids["c2"], direction="upstream", depth=3
            )
            cut = await views.query.lineage(artifact=chain.ids["c2"], direction="upstream", depth=2)
        assert {
            chain.node("c2", 0),
            chain.node("s2", 1),
            chain.node("c1", 1),
            chain.node("s1", 2),
            chain.node("c0", 2),
            chain.node("s0", 3),
        } == nodes_of(whole)
        assert 5 == len(whole.edges)
        assert whole.truncated is False
        assert nodes_of(whole) - {chain.node("s0", 3)} == nodes_of(cut)
        assert edges_of(whole) - {chain.produced(0)} == edges_of(cut)
        assert cut.truncated is True

    @pytest.mark.parametrize("direction", ["upstream", "downstream", "both"])
    async def test_depth_zero_is_the_root_alone(self, tmp_path: Path, direction: Any) -> None:
        """At depth 0 the graph is the root, no edge, and truncated (c5 has neighbours)."""
        async with opened(tmp_path) as (store, views):
            chain = await Chain.record(store)
            await views.catch_up()
            graph = await views.query.lineage(
                artifact=chain.ids["c5"], direction=direction, depth=0
            )
        assert {chain.node("c5", 0)} == nodes_of(graph)
        assert [] == graph.edges
        assert graph.truncated is True

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            pytest.param({}, "exactly one", id="no-root"),
            pytest.param({"artifact": "c0", "run": "chain-1"}, "exactly one", id="two-roots"),
            pytest.param({"artifact": "c0", "depth": -1}, "depth", id="negative-depth"),
            pytest.param({"artifact": "c0", "direction": "sideways"}, "direction", id="direction"),
        ],
    )
    async def test_wrong_arguments_are_query_errors(
        self, tmp_path: Path, arguments: dict[str, Any], message: str
    ) -> None:
        """No root or two roots, a negative depth or an unknown direction: QueryError."""
        async with opened(tmp_path) as (store, views):
            await Chain.record(store)
            await views.catch_up()
            with pytest.raises(QueryError, match=message):
                await views.query.lineage(**arguments)


class CrossRun:
    """Three runs: ingest-1 (load: raw), train-1 (fit: raw -> model), serve-1 (deploy: model)."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids

    @classmethod
    async def record(cls, store: EventStore, *, report: bool = False) -> CrossRun:
        """Record the runs; with ``report``, train-1 also has a step reading its own model."""
        ids: dict[str, str] = {}
        ingest = await store.start_run("ingest", run_name="ingest-1")
        ids["load"], out = await record_step(ingest, "load", outputs=["raw"])
        ids.update(out)
        await ingest.finish()
        train = await store.start_run("train", run_name="train-1")
        ids["train-1"] = str(train.run_id)
        ids["fit"], out = await record_step(
            train, "fit", inputs={"raw": UUID(ids["raw"])}, outputs=["model"]
        )
        ids.update(out)
        if report:
            ids["report"], out = await record_step(
                train, "report", inputs={"model": UUID(ids["model"])}, outputs=["card"]
            )
            ids.update(out)
        await train.finish()
        serve = await store.start_run("serve", run_name="serve-1")
        ids["serve-1"] = str(serve.run_id)
        ids["deploy"], _ = await record_step(serve, "deploy", inputs={"model": UUID(ids["model"])})
        await serve.finish()
        return cls(ids)


class TestRunLineage:
    """The lineage of a run starts from all its step runs."""

    async def test_run_lineage_upstream_and_downstream(self, tmp_path: Path) -> None:
        """From train-1: upstream its input raw and the step of another run that wrote it;
        downstream its model and the step of another run that read it; nodes name their run."""
        async with opened(tmp_path) as (store, views):
            x = await CrossRun.record(store)
            await views.catch_up()
            up = await views.query.lineage(run="train-1", direction="upstream")
            down = await views.query.lineage(run=x.ids["train-1"], direction="downstream")
        assert [x.ids["fit"]] == up.roots == down.roots
        assert {
            (x.ids["fit"], "fit", "train-1", 0),
            (x.ids["raw"], "raw:v1", "ingest-1", 1),
            (x.ids["load"], "load", "ingest-1", 1),
        } == {(n.id, n.label, n.run_name, n.depth) for n in up.nodes}
        assert {
            (x.ids["raw"], x.ids["fit"], "consumed", "raw"),
            (x.ids["load"], x.ids["raw"], "produced", "raw"),
        } == edges_of(up)
        assert {
            (x.ids["fit"], "fit", "train-1", 0),
            (x.ids["model"], "model:v1", "train-1", 1),
            (x.ids["deploy"], "deploy", "serve-1", 1),
        } == {(n.id, n.label, n.run_name, n.depth) for n in down.nodes}
        assert {
            (x.ids["fit"], x.ids["model"], "produced", "model"),
            (x.ids["model"], x.ids["deploy"], "consumed", "model"),
        } == edges_of(down)
        assert (False, False) == (up.truncated, down.truncated)

    async def test_run_lineage_both_ways(self, tmp_path: Path) -> None:
        """Both ways from train-1 is the union of its upstream and downstream graphs."""
        async with opened(tmp_path) as (store, views):
            await CrossRun.record(store)
            await views.catch_up()
            up = await views.query.lineage(run="train-1", direction="upstream")
            down = await views.query.lineage(run="train-1", direction="downstream")
            both = await views.query.lineage(run="train-1", direction="both")
        assert nodes_of(up) | nodes_of(down) == nodes_of(both)
        assert edges_of(up) | edges_of(down) == edges_of(both)

    async def test_run_lineage_both_ways_when_the_run_reads_its_own_output(
        self, tmp_path: Path
    ) -> None:
        """Both ways from a run whose step reads another of its steps' output still reaches
        the consumers of that output in other runs: the union of upstream and downstream."""
        async with opened(tmp_path) as (store, views):
            await CrossRun.record(store, report=True)
            await views.catch_up()
            up = await views.query.lineage(run="train-1", direction="upstream")
            down = await views.query.lineage(run="train-1", direction="downstream")
            both = await views.query.lineage(run="train-1", direction="both")
        assert {n.id for n in up.nodes} | {n.id for n in down.nodes} == {n.id for n in both.nodes}


# -- runs ------------------------------------------------------------------------------


async def two_stacks(store: EventStore) -> tuple[UUID, UUID]:
    """Stacks alpha (active) and beta, each with its own orchestrator and artifact store."""
    for suffix in ("a", "b"):
        await store.register_component("orchestrator", f"orch-{suffix}", flavor="local")
        await store.register_component("artifact_store", f"files-{suffix}", flavor="local")
    alpha = await store.register_stack(
        "alpha", {"orchestrator": "orch-a", "artifact_store": "files-a"}, set_active=True
    )
    beta = await store.register_stack(
        "beta", {"orchestrator": "orch-b", "artifact_store": "files-b"}
    )
    return alpha, beta


class TestRunsListing:
    """runs(): newest first, filtered by pipeline, status, stack, start time, limited."""

    async def record(self, store: EventStore) -> tuple[UUID, UUID]:
        """Five runs: train-1 (alpha, completed), eval-1 (beta, failed), train-2 (beta,
        completed), train-3 (alpha, running), eval-2 (alpha, stopped)."""
        alpha, beta = await two_stacks(store)
        plan: list[tuple[str, str, str, Any]] = [
            ("train", "train-1", "alpha", "completed"),
            ("eval", "eval-1", "beta", "failed"),
            ("train", "train-2", "beta", "completed"),
            ("train", "train-3", "alpha", None),
            ("eval", "eval-2", "alpha", "stopped"),
        ]
        for pipeline, name, stack, status in plan:
            run = await store.start_run(pipeline, run_name=name, stack=stack)
            if status is not None:
                await run.finish(status)
        return alpha, beta

    async def test_filters(self, tmp_path: Path) -> None:
        """Each filter alone, combined, and a stack given by name or by id."""
        async with opened(tmp_path) as (store, views):
            _, beta = await self.record(store)
            await views.catch_up()
            query = views.query

            async def names(**filters: Any) -> list[str]:
                return [r.run_name for r in await query.runs(**filters)]

            assert ["eval-2", "train-3", "train-2", "eval-1", "train-1"] == await names()
            assert ["train-3", "train-2", "train-1"] == await names(pipeline="train")
            assert ["train-2", "train-1"] == await names(status="completed")
            assert ["train-3"] == await names(status="running")
            assert ["eval-2", "train-3", "train-1"] == await names(stack="alpha")
            assert ["train-2", "eval-1"] == await names(stack=str(beta))
            assert ["train-2"] == await names(pipeline="train", stack="beta")
            assert ["eval-1"] == await names(status="failed", pipeline="eval", stack="beta")
            assert [] == await names(pipeline="train", status="failed")
            assert [] == await names(pipeline="Train")  # names match exactly
            assert ["eval-2", "train-3"] == await names(limit=2)
            assert [] == await names(limit=0)

    async def test_a_count_can_stop_at_a_bound(self, tmp_path: Path) -> None:
        """count_runs(most=N) counts up to N (the runs page's "more than 10,000")."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await views.catch_up()
            count = views.query.count_runs
            assert 5 == await count()
            assert (3, 5, 5) == (await count(most=3), await count(most=5), await count(most=9))
            assert (2, 3) == (await count(pipeline="eval", most=3), await count(stack="alpha"))
            assert 0 == await count(most=0)

    async def test_since_and_until_are_inclusive(self, tmp_path: Path) -> None:
        """since and until bound the start time, both ends included."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await views.catch_up()
            everything = await views.query.runs(limit=None)
            starts = [r.started_at for r in reversed(everything)]
            assert sorted(set(starts)) == starts  # distinct start times, oldest first
            second, fourth = starts[1], starts[3]
            since = await views.query.runs(since=second)
            until = await views.query.runs(until=second)
            between = await views.query.runs(since=second, until=fourth)
        assert ["eval-2", "train-3", "train-2", "eval-1"] == [r.run_name for r in since]
        assert ["eval-1", "train-1"] == [r.run_name for r in until]
        assert ["train-3", "train-2", "eval-1"] == [r.run_name for r in between]

    async def test_listed_runs_carry_their_facts(self, tmp_path: Path) -> None:
        """A listed run shows its pipeline, status, stack by id and name, config and tags,
        and no steps (those come with run())."""
        async with opened(tmp_path) as (store, views):
            alpha, _ = await two_stacks(store)
            run = await store.start_run(
                "train",
                run_name="t",
                orchestrator_run_id="airflow-42",
                config={"epochs": 3},
                tags=["nightly", "gpu"],
            )
            await run.start_step("s")
            await views.catch_up()
            [listed] = await views.query.runs()
        assert (
            str(run.run_id),
            "train",
            "t",
            "running",
            str(alpha),
            "alpha",
            "airflow-42",
            {"epochs": 3},
            ["nightly", "gpu"],
            {"running": 1},
            [],
        ) == (
            listed.run_id,
            listed.pipeline_name,
            listed.run_name,
            listed.status,
            listed.stack_id,
            listed.stack,
            listed.orchestrator_run_id,
            listed.config,
            listed.tags,
            listed.step_counts,
            listed.steps,
        )

    async def test_a_negative_limit_is_a_query_error(self, tmp_path: Path) -> None:
        """runs(limit=-1) is refused."""
        async with opened(tmp_path) as (_, views):
            with pytest.raises(QueryError, match="limit"):
                await views.query.runs(limit=-1)


FIRST_ID = UUID("0a1b2c3d-0000-4000-8000-000000000001")
SECOND_ID = UUID("0a1b2c3d-1111-4000-8000-000000000002")


class TestRunResolution:
    """run() finds a run by id, unique id prefix or name; ambiguity and absence are errors."""

    async def record(self, store: EventStore) -> None:
        """train-1 and train-2 with ids sharing the prefix 0a1b2c3d; an older, deleted train-2."""
        old = await store.start_run("train", run_name="train-2")
        await old.finish("failed")
        await store.delete_run(old.run_id)  # frees its name
        await store.start_run("train", run_name="train-1", run_id=FIRST_ID)
        await store.start_run("train", run_name="train-2", run_id=SECOND_ID)

    @pytest.mark.parametrize(
        ("ref", "expected"),
        [
            pytest.param(str(FIRST_ID), FIRST_ID, id="id"),
            pytest.param("0a1b2c3d-0", FIRST_ID, id="prefix"),
            pytest.param("0a1b2c3d-1111", SECOND_ID, id="longer-prefix"),
            pytest.param("train-1", FIRST_ID, id="name"),
            pytest.param("train-2", SECOND_ID, id="a-reused-name-gives-the-live-run"),
        ],
    )
    async def test_references(self, tmp_path: Path, ref: str, expected: UUID) -> None:
        """An id, a unique id prefix, or a run name (of the one live run of that name)."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await views.catch_up()
            assert str(expected) == (await views.query.run(ref)).run_id

    async def test_an_ambiguous_prefix_is_a_query_error(self, tmp_path: Path) -> None:
        """A prefix of two run ids is refused, naming the ambiguity."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await views.catch_up()
            with pytest.raises(QueryError, match="could mean several runs") as caught:
                await views.query.run("0a1b2c3d")
        assert not isinstance(caught.value, ViewNotFoundError)

    async def test_an_unknown_name_suggests_close_ones(self, tmp_path: Path) -> None:
        """An unknown name raises ViewNotFoundError listing the close run names."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await store.start_run("evaluate", run_name="eval-9")
            await views.catch_up()
            with pytest.raises(ViewNotFoundError) as caught:
                await views.query.run("train-3")
        assert ("run", "train-3") == (caught.value.kind, caught.value.name)
        assert {"train-1", "train-2"} == set(caught.value.suggestions)
        assert "did you mean" in str(caught.value)


class TestRunDescription:
    """run() and steps() describe each step: status, times, inputs, outputs, metadata."""

    async def test_steps_of_a_run(self, tmp_path: Path) -> None:
        """Steps in start order with status, parameters, cache key, upstream steps, error,
        inputs and outputs (name -> artifact id) and metadata; the run counts them by
        status, and finishing the run stops the step still running."""
        async with opened(tmp_path) as (store, views):
            run = await store.start_run("train", run_name="t-1")
            await run.log_metadata({"owner": "ml-team"})
            load = await run.start_step("load", parameters={"rows": 10}, cache_key="k-load")
            data = await load.produce("data", uri="file:///data", name="dataset")
            await load.log_metadata({"rows_read": 10, "source": "s3"})
            await load.finish()
            train = await run.start_step("train", upstream_steps=["load"])
            await train.consume("features", data)
            await train.finish("failed", error="ValueError: boom")
            lookup = await run.start_step("lookup")
            await lookup.finish("cached")
            wait = await run.start_step("wait")
            await views.catch_up()
            running = await views.query.run("t-1")
            await run.finish("failed", error="train failed", stop_running_steps=True)
            await views.catch_up()
            finished = await views.query.run("t-1")
            steps = await views.query.steps(str(run.run_id))
            events = [e.event async for e in store.read_stream(run.stream_id)]

        assert ("running", None, None) == (
            running.status,
            running.finished_at,
            running.duration_s,
        )
        assert {"completed": 1, "failed": 1, "cached": 1, "running": 1} == running.step_counts
        assert {"owner": "ml-team"} == running.metadata
        assert [None] == [s.duration_s for s in running.steps if s.name == "wait"]

        ids = {
            s.step_run_id: s.name for s in (load, train, lookup, wait)
        }  # in the order they started
        assert list(ids.values()) == [s.name for s in finished.steps]
        assert [str(i) for i in ids] == [s.step_run_id for s in finished.steps]
        described = [
            (
                s.name,
                s.status,
                s.parameters,
                s.cache_key,
                s.upstream_steps,
                s.error,
                s.inputs,
                s.outputs,
                s.metadata,
            )
            for s in finished.steps
        ]
        assert [
            (
                "load",
                "completed",
                {"rows": 10},
                "k-load",
                [],
                None,
                {},
                {"data": str(data)},
                {"rows_read": 10, "source": "s3"},
            ),
            (
                "train",
                "failed",
                {},
                None,
                ["load"],
                "ValueError: boom",
                {"features": str(data)},
                {},
                {},
            ),
            ("lookup", "cached", {}, None, [], None, {}, {}, {}),
            (
                "wait",
                "stopped",
                {},
                None,
                [],
                "the run finished while the step was running",
                {},
                {},
                {},
            ),
        ] == described
        assert finished.steps == steps
        assert {"completed": 1, "failed": 1, "cached": 1, "stopped": 1} == finished.step_counts
        assert ("failed", "train failed") == (finished.status, finished.error)

        started = {e.step_run_id: e.started_at for e in events if isinstance(e, StepStarted)}
        ended = {e.step_run_id: e.finished_at for e in events if isinstance(e, StepFinished)}
        assert [
            (us_from_datetime(ended[i]) - us_from_datetime(started[i])) / 1_000_000 for i in ids
        ] == [s.duration_s for s in finished.steps]
        assert [(started[i], ended[i]) for i in ids] == [
            (s.started_at, s.finished_at) for s in finished.steps
        ]
        assert finished.finished_at is not None
        assert finished.duration_s == (finished.finished_at - finished.started_at).total_seconds()

    async def test_steps_of_an_unknown_run(self, tmp_path: Path) -> None:
        """steps() of a run the views do not hold raises ViewNotFoundError."""
        async with opened(tmp_path) as (_, views):
            with pytest.raises(ViewNotFoundError):
                await views.query.steps("nope")


# -- artifacts -------------------------------------------------------------------------


MODEL_IDS = (
    UUID("abcdef01-0000-4000-8000-000000000001"),
    UUID("abcdef01-1111-4000-8000-000000000002"),
    UUID("abcdef01-2222-4000-8000-000000000003"),
)


class TestArtifacts:
    """artifacts() and artifact(): versions per name, filters, references, consumers."""

    async def record(self, store: EventStore) -> dict[str, str]:
        """Runs train-1..3, each with prep (writes features) then fit (writes model);
        train-3's eval reads train-2's model as baseline. Returns ids by label."""
        ids: dict[str, str] = {}
        for i in (1, 2, 3):
            run = await store.start_run("train", run_name=f"train-{i}")
            ids[f"run{i}"] = str(run.run_id)
            prep = await run.start_step("prep")
            features = await prep.produce("features", uri=f"file:///f/{i}", name="features")
            await prep.finish()
            fit = await run.start_step("fit")
            await fit.consume("features", features)
            model = await fit.produce(
                "model",
                uri=f"s3://models/{i}",
                name="model",
                artifact_type="ModelArtifact",
                data_type="sklearn.Pipeline",
                materializer="pickle",
                content_hash=f"sha-{i}",
                size_bytes=1000 * i,
                metadata={"accuracy": i / 4},
                artifact_id=MODEL_IDS[i - 1],
            )
            await fit.finish()
            ids[f"features{i}"], ids[f"model{i}"] = str(features), str(model)
            if i == 3:
                evaluate = await run.start_step("eval")
                ids["eval"] = str(evaluate.step_run_id)
                await evaluate.consume("baseline", MODEL_IDS[1])
                await evaluate.consume("candidate", model)
                await evaluate.finish()
            await run.finish()
        return ids

    async def test_versions_increase_per_name(self, tmp_path: Path) -> None:
        """model and features each get v1, v2, v3 in the order they were written."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            models = await views.query.artifacts(name="model")
            features = await views.query.artifacts(name="features")
        assert [(ids["model3"], 3), (ids["model2"], 2), (ids["model1"], 1)] == [
            (a.artifact_id, a.version) for a in models
        ]
        assert [3, 2, 1] == [a.version for a in features]
        assert ["train-3", "train-2", "train-1"] == [a.run_name for a in features]

    async def test_filters(self, tmp_path: Path) -> None:
        """By type, by producing run (name or id), by name, combined, and limited."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            query = views.query

            async def labels(**filters: Any) -> list[str]:
                return [f"{a.name}:{a.version}" for a in await query.artifacts(**filters)]

            assert ["model:3", "model:2", "model:1"] == await labels(artifact_type="ModelArtifact")
            assert ["features:3", "features:2", "features:1"] == await labels(
                artifact_type="DataArtifact"
            )
            assert ["model:2", "features:2"] == await labels(run="train-2")
            assert ["model:2", "features:2"] == await labels(run=ids["run2"])
            assert ["features:1"] == await labels(run="train-1", name="features")
            assert [] == await labels(run="train-1", artifact_type="DataAnalysisArtifact")
            assert ["model:3", "features:3"] == await labels(limit=2)
            assert 6 == len(await labels(limit=None))
            with pytest.raises(ViewNotFoundError):
                await query.artifacts(run="train-9")

    @pytest.mark.parametrize(
        ("ref", "label"),
        [
            pytest.param(str(MODEL_IDS[1]), "model:2", id="id"),
            pytest.param("abcdef01-1", "model:2", id="prefix"),
            pytest.param("model:1", "model:1", id="name-version"),
            pytest.param("model", "model:3", id="name-is-latest"),
            pytest.param("features:2", "features:2", id="other-name-version"),
        ],
    )
    async def test_references(self, tmp_path: Path, ref: str, label: str) -> None:
        """An id, a unique id prefix, name:version, or a name for its latest version."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await views.catch_up()
            found = await views.query.artifact(ref)
        assert label == f"{found.name}:{found.version}"

    async def test_wrong_references(self, tmp_path: Path) -> None:
        """An ambiguous prefix is a QueryError; an unknown name or version raises
        ViewNotFoundError suggesting close names."""
        async with opened(tmp_path) as (store, views):
            await self.record(store)
            await views.catch_up()
            with pytest.raises(QueryError, match="several artifacts"):
                await views.query.artifact("abcdef01")
            with pytest.raises(ViewNotFoundError) as caught:
                await views.query.artifact("modle")
            with pytest.raises(ViewNotFoundError):
                await views.query.artifact("model:4")
        assert ("model",) == caught.value.suggestions

    async def test_an_artifact_describes_its_producer_and_consumers(self, tmp_path: Path) -> None:
        """artifact() shows what the producing step recorded, and every step that read it."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            model = await views.query.artifact("model:2")
            latest = await views.query.artifact("model")
            features = await views.query.artifact("features:1")
            fit = [s for s in (await views.query.run("train-1")).steps if s.name == "fit"]
            listed = await views.query.artifacts(name="model")
        assert (
            "s3://models/2",
            "ModelArtifact",
            "sklearn.Pipeline",
            "pickle",
            "sha-2",
            2000,
            {"accuracy": 0.5},
            ids["run2"],
            "train-2",
            "train",
            "fit",
            "model",
        ) == (
            model.uri,
            model.artifact_type,
            model.data_type,
            model.materializer,
            model.content_hash,
            model.size_bytes,
            model.metadata,
            model.run_id,
            model.run_name,
            model.pipeline_name,
            model.step_name,
            model.output_name,
        )
        eval_step = ConsumerView(
            step_run_id=ids["eval"],
            step_name="eval",
            run_id=ids["run3"],
            run_name="train-3",
            input_name="baseline",
        )
        assert [eval_step] == model.consumers
        assert ["candidate"] == [c.input_name for c in latest.consumers]
        assert [(fit[0].step_run_id, "fit", "train-1", "features")] == [
            (c.step_run_id, c.step_name, c.run_name, c.input_name) for c in features.consumers
        ]
        assert [[], [], []] == [a.consumers for a in listed]  # listings leave them out


# -- components and stacks -------------------------------------------------------------


class TestStacksAndComponents:
    """Components and stacks as the views show them; deleted ones are hidden."""

    async def record(self, store: EventStore) -> dict[str, UUID]:
        """dev (active: local orchestrator and files), prod (k8s, s3, wandb); old and mlflow
        registered then deleted."""
        ids = {
            "local": await store.register_component(
                "orchestrator", "local", flavor="local", labels={"team": "ml"}
            ),
            "k8s": await store.register_component(
                "orchestrator", "k8s", flavor="kubernetes", configuration={"context": "prod"}
            ),
            "files": await store.register_component(
                "artifact_store", "files", flavor="local", configuration={"path": "/tmp/a"}
            ),
            "s3": await store.register_component(
                "artifact_store", "s3", flavor="s3", configuration={"path": "s3://b"}
            ),
            "wandb": await store.register_component("experiment_tracker", "wandb", flavor="wandb"),
            "mlflow": await store.register_component(
                "experiment_tracker", "mlflow", flavor="mlflow"
            ),
        }
        ids["dev"] = await store.register_stack(
            "dev",
            {"orchestrator": "local", "artifact_store": "files"},
            description="laptop",
            labels={"env": "dev"},
            set_active=True,
        )
        ids["prod"] = await store.register_stack(
            "prod", {"orchestrator": "k8s", "artifact_store": "s3", "experiment_tracker": "wandb"}
        )
        ids["old"] = await store.register_stack(
            "old", {"orchestrator": "local", "artifact_store": "s3"}
        )
        await store.delete_stack("old")
        await store.delete_component("experiment_tracker", "mlflow")
        return ids

    async def test_components(self, tmp_path: Path) -> None:
        """Live components by type then name, with the live stacks using each; deleted ones
        only on request."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            live = await views.query.components()
            everything = await views.query.components(include_deleted=True)
            orchestrators = await views.query.components("orchestrator")
        assert [
            ("artifact_store", "files", "local", {"path": "/tmp/a"}, ["dev"]),
            ("artifact_store", "s3", "s3", {"path": "s3://b"}, ["prod"]),
            ("experiment_tracker", "wandb", "wandb", {}, ["prod"]),
            ("orchestrator", "k8s", "kubernetes", {"context": "prod"}, ["prod"]),
            ("orchestrator", "local", "local", {}, ["dev"]),
        ] == [(c.type, c.name, c.flavor, c.configuration, c.stacks) for c in live]
        assert [str(ids[n]) for n in ("files", "s3", "wandb", "k8s", "local")] == [
            c.component_id for c in live
        ]
        assert {"team": "ml"} == live[-1].labels
        assert {False} == {c.deleted for c in live}
        assert [("experiment_tracker", "mlflow", True)] == [
            (c.type, c.name, c.deleted) for c in everything if c not in live
        ]
        assert ["k8s", "local"] == [c.name for c in orchestrators]

    async def test_stacks(self, tmp_path: Path) -> None:
        """Live stacks by name, the active one flagged, each with its components by type."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            stacks = await views.query.stacks()
        assert [("dev", True), ("prod", False)] == [(s.name, s.active) for s in stacks]
        dev, prod = stacks
        assert (str(ids["dev"]), "laptop", {"env": "dev"}) == (
            dev.stack_id,
            dev.description,
            dev.labels,
        )
        assert {
            "artifact_store": (str(ids["files"]), "files", "local"),
            "orchestrator": (str(ids["local"]), "local", "local"),
        } == {t: (c.component_id, c.name, c.flavor) for t, c in dev.components.items()}
        assert {
            "artifact_store": "s3",
            "experiment_tracker": "wandb",
            "orchestrator": "k8s",
        } == {t: c.name for t, c in prod.components.items()}

    async def test_one_stack(self, tmp_path: Path) -> None:
        """stack() by name, id or id prefix; None for the active stack; a deleted or unknown
        stack raises ViewNotFoundError with close names."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            query = views.query
            assert "dev" == (await query.stack()).name
            assert "prod" == (await query.stack("prod")).name
            assert "prod" == (await query.stack(str(ids["prod"]))).name
            assert "prod" == (await query.stack(str(ids["prod"])[:13])).name
            with pytest.raises(ViewNotFoundError):
                await query.stack("old")
            with pytest.raises(ViewNotFoundError):
                await query.stack(str(ids["old"]))
            with pytest.raises(ViewNotFoundError) as caught:
                await query.stack("prd")
            await store.set_active_stack("prod")
            await views.catch_up()
            assert "prod" == (await query.stack(None)).name
            assert [("dev", False), ("prod", True)] == [
                (s.name, s.active) for s in await query.stacks()
            ]
        assert ("prod",) == caught.value.suggestions

    async def test_one_component(self, tmp_path: Path) -> None:
        """component() by type and name, id or id prefix; None for the active stack's
        component of that type; deleted, unknown or absent from the active stack: not found."""
        async with opened(tmp_path) as (store, views):
            ids = await self.record(store)
            await views.catch_up()
            query = views.query
            assert "k8s" == (await query.component("orchestrator", "k8s")).name
            assert "k8s" == (await query.component("orchestrator", str(ids["k8s"]))).name
            assert "k8s" == (await query.component("orchestrator", str(ids["k8s"])[:13])).name
            assert ["prod"] == (await query.component("orchestrator", "k8s")).stacks
            assert "local" == (await query.component("orchestrator")).name
            assert "files" == (await query.component("artifact_store", None)).name
            with pytest.raises(ViewNotFoundError):
                await query.component("experiment_tracker")  # dev has none
            with pytest.raises(ViewNotFoundError):
                await query.component("experiment_tracker", "mlflow")  # deleted
            with pytest.raises(ViewNotFoundError):
                await query.component("artifact_store", "k8s")  # another type's name
            with pytest.raises(ViewNotFoundError) as caught:
                await query.component("orchestrator", "k8")
            await store.set_active_stack("prod")
            await views.catch_up()
            assert "k8s" == (await query.component("orchestrator")).name
            assert "wandb" == (await query.component("experiment_tracker")).name
        assert ("k8s",) == caught.value.suggestions

    async def test_no_active_stack(self, tmp_path: Path) -> None:
        """Without an active stack, stack(None) and component(type, None) are not found."""
        async with opened(tmp_path) as (store, views):
            await store.register_component("orchestrator", "o", flavor="local")
            await views.catch_up()
            with pytest.raises(ViewNotFoundError):
                await views.query.stack()
            with pytest.raises(ViewNotFoundError):
                await views.query.component("orchestrator")


# -- run deletion ----------------------------------------------------------------------


class TestRunDeletion:
    """A run.deleted tombstone makes the views forget a run; the log keeps every event."""

    async def test_views_forget_the_run_and_the_log_keeps_it(self, tmp_path: Path) -> None:
        """After delete_run: the run, its steps, metadata and artifacts are gone from every
        view and query; the other run is untouched; the log still holds all the events."""
        async with opened(tmp_path) as (store, views):
            gone = await store.start_run("p", run_name="gone")
            step = await gone.start_step("load")
            gone_data = await step.produce("data", uri="file:///1", name="data")
            await step.log_metadata({"rows": 1})
            await step.finish()
            await gone.finish()
            kept = await store.start_run("p", run_name="kept")
            kept_step, kept_out = await record_step(kept, "load", outputs=["data"])
            await kept.finish()
            await views.catch_up()
            assert 2 == (await views.query.artifact("data")).version
            before_head = await store.head()

            await store.delete_run(gone.run_id, reason="GDPR")
            await views.catch_up()
            query = views.query
            assert ["kept"] == [r.run_name for r in await query.runs()]
            for ref in ("gone", str(gone.run_id)):
                with pytest.raises(ViewNotFoundError):
                    await query.run(ref)
                with pytest.raises(ViewNotFoundError):
                    await query.artifacts(run=ref)
                with pytest.raises(ViewNotFoundError):
                    await query.lineage(run=ref)
            with pytest.raises(ViewNotFoundError):
                await query.artifact(str(gone_data))
            assert [kept_out["data"]] == [a.artifact_id for a in await query.artifacts()]
            assert kept_out["data"] == (await query.artifact("data")).artifact_id
            summary = await query.summary()
            assert ({"completed": 1}, 1, 1) == (summary.runs, summary.steps, summary.artifacts)
            graph = await query.lineage(artifact="data")
            assert {kept_step, kept_out["data"]} == {n.id for n in graph.nodes}
            leftovers = {
                table: await views.views_store.fetch(
                    f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (str(gone.run_id),)
                )
                for projection in default_projections()
                for table in (
                    *(t for t, d in projection.tables.items() if "run_id TEXT" in d.columns),
                    *projection.derived,
                )
            }
            # 5 native tables, the 2 derived views (step names, lineage edges) and
            # the 4 OpenLineage tables (run trees, state, facets shown).
            assert 11 == len(leftovers)
            assert {table: [(0,)] for table in leftovers} == leftovers

            logged = [e.type async for e in store.read_stream(run_stream(gone.run_id))]
            produced = await store.get_event(artifact_event_id(gone_data))
            assert before_head + 1 == await store.head()
            assert before_head + 1 == len([e async for e in store.read_all()])
        assert [
            "run.started",
            "step.started",
            "artifact.produced",
            "metadata.logged",
            "step.finished",
            "run.finished",
            "run.deleted",
        ] == logged
        assert produced is not None
        assert "artifact.produced" == produced.type

    async def test_lineage_edges_join_listed_nodes_after_a_deletion(self, tmp_path: Path) -> None:
        """After deleting the run that wrote an artifact another run read, every lineage
        edge of the reading run still joins two nodes of the graph."""
        async with opened(tmp_path) as (store, views):
            x = await CrossRun.record(store)
            await views.catch_up()
            ingest = await views.query.run("ingest-1")
            await store.delete_run(UUID(ingest.run_id))
            await views.catch_up()
            graph = await views.query.lineage(run="train-1", direction="upstream")
        listed = {n.id for n in graph.nodes}
        assert x.ids["raw"] not in listed
        assert set() == {(e.source, e.target) for e in graph.edges} - {
            (s, t) for s in listed for t in listed
        }


# -- history ---------------------------------------------------------------------------


class TestHistory:
    """history(): one entity's events, from the log, in log order."""

    async def test_history_of_a_run(self, tmp_path: Path) -> None:
        """A run's history is its stream: every event of the run and its steps, in order."""
        async with opened(tmp_path) as (store, views):
            await ensure_default_stack(store, tmp_path / "a")
            run_id = await run_demo(store, artifact_root=tmp_path / "a")
            await store.start_run("other")
            await views.catch_up()
            history = await views.query.history("run", str(run_id))
            stream = [e async for e in store.read_stream(run_stream(run_id))]
        assert [e.position for e in stream] == [e.position for e in history]
        assert sorted(e.position for e in history) == [e.position for e in history]
        assert "run.started" == history[0].type
        assert "run.finished" == history[-1].type
        assert {str(run_id)} == {str(getattr(e.event, "run_id", None)) for e in history}

    async def test_history_of_a_component(self, tmp_path: Path) -> None:
        """A component's history: registered, updated, renamed, deleted; by its new name
        or its id; other components' events are left out."""
        async with opened(tmp_path) as (store, views):
            component_id = await store.register_component(
                "experiment_tracker", "mlflow", flavor="mlflow"
            )
            await store.register_component("experiment_tracker", "wandb", flavor="wandb")
            await store.update_component("experiment_tracker", "mlflow", {"uri": "http://m"})
            await store.rename_component("experiment_tracker", "mlflow", "tracking")
            await views.catch_up()
            by_name = await views.query.history("component", "tracking")
            by_id = await views.query.history("component", str(component_id))
            await store.delete_component("experiment_tracker", "tracking")
            await views.catch_up()
            deleted = await views.query.history("component", str(component_id))
        assert ["component.registered", "component.updated", "component.renamed"] == [
            e.type for e in by_name
        ]
        assert by_name == by_id
        assert [*by_name, deleted[-1]] == deleted
        assert "component.deleted" == deleted[-1].type
        assert {component_id} == {getattr(e.event, "component_id", None) for e in deleted}
        assert sorted(e.position for e in deleted) == [e.position for e in deleted]

    async def test_history_of_a_stack(self, tmp_path: Path) -> None:
        """A stack's history: registered, made active, updated, renamed; by name or id."""
        async with opened(tmp_path) as (store, views):
            alpha, beta = await two_stacks(store)
            await store.set_active_stack("beta")
            await store.update_stack("alpha", {"orchestrator": "orch-b"})
            await store.rename_stack("alpha", "gamma")
            await views.catch_up()
            by_name = await views.query.history("stack", "gamma")
            by_id = await views.query.history("stack", str(alpha))
            other = await views.query.history("stack", "beta")
        assert [
            "stack.registered",
            "workspace.active_stack_set",
            "stack.updated",
            "stack.renamed",
        ] == [e.type for e in by_name]
        assert by_name == by_id
        assert sorted(e.position for e in by_name) == [e.position for e in by_name]
        assert ["stack.registered", "workspace.active_stack_set"] == [e.type for e in other]
        assert {beta} == {getattr(e.event, "stack_id", None) for e in other}

    async def test_history_of_an_artifact(self, tmp_path: Path) -> None:
        """An artifact's history: its production, then each consumption by other runs, in
        log order."""
        async with opened(tmp_path) as (store, views):
            x = await CrossRun.record(store)
            second = await store.start_run("serve", run_name="serve-2")
            await record_step(second, "deploy", inputs={"model": UUID(x.ids["model"])})
            await second.finish()
            await views.catch_up()
            history = await views.query.history("artifact", "model")
        assert ["artifact.produced", "artifact.consumed", "artifact.consumed"] == [
            e.type for e in history
        ]
        assert sorted(e.position for e in history) == [e.position for e in history]
        assert {x.ids["model"]} == {str(getattr(e.event, "artifact_id", None)) for e in history}
        assert [
            f"run-{x.ids['train-1']}",
            f"run-{x.ids['serve-1']}",
            run_stream(second.run_id),
        ] == [e.stream_id for e in history]

    async def test_history_of_an_artifact_read_in_its_own_run(self, tmp_path: Path) -> None:
        """An artifact read by a step of the run that wrote it: each event appears once."""
        async with opened(tmp_path) as (store, views):
            await CrossRun.record(store, report=True)
            await views.catch_up()
            history = await views.query.history("artifact", "model")
        assert ["artifact.produced", "artifact.consumed", "artifact.consumed"] == [
            e.type for e in history
        ]

    async def test_unknown_entities_and_no_store(self, tmp_path: Path) -> None:
        """history() of an unknown entity raises ViewNotFoundError; without the store it is
        a QueryError."""
        async with opened(tmp_path) as (store, views):
            await ensure_default_stack(store, tmp_path / "a")
            await views.catch_up()
            for kind in ("component", "stack", "run", "artifact"):
                with pytest.raises(ViewNotFoundError):
                    await views.query.history(kind, "nothing")
            with pytest.raises(QueryError, match="store"):
                await Queries(views.views_store).history("stack", "default")


# -- injection safety ------------------------------------------------------------------


HOSTILE = [
    "x'; DROP TABLE runs; --",
    "%",
    "_",
    "%%",
    "_%",
    "1 OR 1=1",
    "' OR '1'='1",
    '" OR ""="',
    "') OR ('1'='1",
    "\\",
    "\\%",
    "?",
    "{runs}",
    "runs",
    "NULL",
    "*",
    "default'--",
    "model:1 OR 1=1",
]

Probe = Callable[[Queries, str], Awaitable[Any]]

#: Queries that must find nothing for a hostile text: each returns its (empty) result.
EMPTY_RESULTS: list[tuple[str, Probe]] = [
    ("runs-pipeline", lambda q, h: q.runs(pipeline=h)),
    ("runs-status", lambda q, h: q.runs(status=h)),
    ("runs-stack", lambda q, h: q.runs(stack=h)),
    ("artifacts-name", lambda q, h: q.artifacts(name=h)),
    ("components-type", lambda q, h: q.components(h)),
    ("components-type-deleted", lambda q, h: q.components(h, include_deleted=True)),
]

#: Resolvers that must raise ViewNotFoundError for a hostile reference.
NOT_FOUND: list[tuple[str, Probe]] = [
    ("run", lambda q, h: q.run(h)),
    ("steps", lambda q, h: q.steps(h)),
    ("artifact", lambda q, h: q.artifact(h)),
    ("artifacts-run", lambda q, h: q.artifacts(run=h)),
    ("stack", lambda q, h: q.stack(h)),
    ("component-name", lambda q, h: q.component("orchestrator", h)),
    ("component-type", lambda q, h: q.component(h, "default")),
    ("component-type-active", lambda q, h: q.component(h)),
    ("lineage-artifact", lambda q, h: q.lineage(artifact=h)),
    ("lineage-run", lambda q, h: q.lineage(run=h)),
    ("history-run", lambda q, h: q.history("run", h)),
    ("history-artifact", lambda q, h: q.history("artifact", h)),
    ("history-component", lambda q, h: q.history("component", h)),
    ("history-stack", lambda q, h: q.history("stack", h)),
]


async def one_of_each(store: EventStore, tmp_path: Path) -> None:
    """Exactly one stack, one component per type, one run and one artifact: an unescaped
    wildcard prefix would match it, where an escaped one matches nothing."""
    await ensure_default_stack(store, tmp_path / "a")
    run = await store.start_run("p", run_name="only-run")
    await record_step(run, "s", outputs=["only-artifact"])
    await run.finish()


async def schema_and_rows(views: Views) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Every object of the views database, and every row of every view table."""
    schema = await views.views_store.fetch("SELECT type, name, sql FROM sqlite_master ORDER BY 2")
    return schema, await dump(views.views_store, default_projections())


class TestInjectionSafety:
    """Names and filters reach SQL only as bound values; LIKE wildcards are escaped."""

    @pytest.mark.parametrize("hostile", HOSTILE)
    async def test_hostile_text_matches_nothing(self, tmp_path: Path, hostile: str) -> None:
        """Through every filter and resolver, a hostile text finds nothing (a wildcard
        prefix does not match the only run, stack, component or artifact), and the views
        are intact afterwards."""
        async with opened(tmp_path) as (store, views):
            await one_of_each(store, tmp_path)
            await views.catch_up()
            before = await schema_and_rows(views)
            query = views.query
            for name, probe in EMPTY_RESULTS:
                assert (name, []) == (name, await probe(query, hostile))
            # Artifact types are a closed set: an unknown one is refused, not matched.
            with pytest.raises(QueryError, match="is not an artifact type"):
                await query.artifacts(artifact_type=hostile)
            found: list[tuple[str, Any]] = []
            for name, probe in NOT_FOUND:
                try:
                    found.append((name, await probe(query, hostile)))
                except ViewNotFoundError:
                    continue
            assert [] == found
            assert before == await schema_and_rows(views)
            summary = await query.summary()
            assert ({"completed": 1}, 1, 1, 3, 1) == (
                summary.runs,
                summary.steps,
                summary.artifacts,
                summary.components,
                summary.stacks,
            )

    async def test_hostile_names_are_stored_and_found_exactly(self, tmp_path: Path) -> None:
        """Entities named with quotes, wildcards and SQL are found by exactly their names,
        and only by them."""
        drop = "x'; DROP TABLE runs; --"
        async with opened(tmp_path) as (store, views):
            await store.register_component("orchestrator", "%", flavor="local")
            await store.register_component("orchestrator", "_", flavor="local")
            await store.register_component("artifact_store", drop, flavor="local")
            await store.register_stack("1 OR 1=1", {"orchestrator": "%", "artifact_store": drop})
            await store.register_stack("%", {"orchestrator": "_", "artifact_store": drop})
            run = await store.start_run("' OR '1'='1", run_name=drop, stack="1 OR 1=1")
            await record_step(run, "s", outputs=["%_%"])
            await run.finish()
            other = await store.start_run("plain", run_name="plain-1", stack="%")
            await record_step(other, "s", outputs=["plain"])
            await other.finish()
            await views.catch_up()
            query = views.query
            assert str(run.run_id) == (await query.run(drop)).run_id
            assert [drop] == [r.run_name for r in await query.runs(pipeline="' OR '1'='1")]
            assert [drop] == [r.run_name for r in await query.runs(stack="1 OR 1=1")]
            assert ["plain-1"] == [r.run_name for r in await query.runs(stack="%")]
            assert "%" == (await query.stack("%")).name
            assert "1 OR 1=1" == (await query.stack("1 OR 1=1")).name
            assert "%" == (await query.component("orchestrator", "%")).name
            assert "_" == (await query.component("orchestrator", "_")).name
            assert drop == (await query.component("artifact_store", drop)).name
            assert "%_%" == (await query.artifact("%_%")).name
            assert "%_%" == (await query.artifact("%_%:1")).name
            assert ["%_%"] == [a.name for a in await query.artifacts(name="%_%")]
            assert ["%_%"] == [a.name for a in await query.artifacts(run=drop)]
            assert ["stack.registered"] == [e.type for e in await query.history("stack", "%")]
            assert 2 == len(await query.runs())


@pytest.mark.parametrize(
    "probe",
    [
        pytest.param(
            lambda q: q.run(""),
            id="empty-run",
        ),
        pytest.param(
            lambda q: q.stack(""),
            id="empty-stack",
        ),
        pytest.param(
            lambda q: q.component("orchestrator", ""),
            id="empty-component",
        ),
        pytest.param(
            lambda q: q.artifact(""),
            id="empty-artifact",
        ),
        pytest.param(
            lambda q: q.artifact("only-artifact:\N{SUPERSCRIPT TWO}"),
            id="superscript-version",
        ),
        pytest.param(
            lambda q: q.artifact("only-artifact:99999999999999999999"),
            id="huge-version",
        ),
    ],
)
async def test_odd_references_name_nothing(tmp_path: Path, probe: Callable[[Queries], Any]) -> None:
    """An empty reference, or a version that is no plain number, names nothing: the
    resolver raises ViewNotFoundError, even when only one entity exists."""
    async with opened(tmp_path) as (store, views):
        await one_of_each(store, tmp_path)
        await views.catch_up()
        with pytest.raises(ViewNotFoundError):
            await probe(views.query)


@pytest.mark.parametrize(
    "probe",
    [
        pytest.param(
            lambda q: q.artifacts(limit=-1),
            id="artifacts-negative-limit",
        ),
        pytest.param(
            lambda q: q.runs(limit=10**20),
            id="runs-huge-limit",
        ),
        pytest.param(
            lambda q: q.artifacts(limit=10**20),
            id="artifacts-huge-limit",
        ),
    ],
)
async def test_out_of_range_limits_are_query_errors(
    tmp_path: Path, probe: Callable[[Queries], Any]
) -> None:
    """A negative limit, or one no database integer holds, is refused with QueryError."""
    async with opened(tmp_path) as (store, views):
        await one_of_each(store, tmp_path)
        await views.catch_up()
        # The message, not only the class: ViewNotFoundError is a QueryError too.
        with pytest.raises(QueryError, match=r"^limit must be between 0 and "):
            await probe(views.query)


# -- summary ---------------------------------------------------------------------------


class TestSummary:
    """summary(): what the views hold, as counts."""

    async def test_empty_views(self, tmp_path: Path) -> None:
        """An empty store: zero of everything, no active stack."""
        async with opened(tmp_path) as (_, views):
            await views.catch_up()
            summary = await views.query.summary()
        assert (0, 0, None, {}, 0, 0) == (
            summary.components,
            summary.stacks,
            summary.active_stack,
            summary.runs,
            summary.steps,
            summary.artifacts,
        )

    async def test_counts(self, tmp_path: Path) -> None:
        """Live components and stacks, the active stack, runs by status, steps, artifacts;
        deleted components, stacks and runs are not counted."""
        async with opened(tmp_path) as (store, views):
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(3):
                await run_demo(store, artifact_root=tmp_path / "a")
            failed = await store.start_run("broken")
            await failed.start_step("s")
            await failed.finish("failed", stop_running_steps=True)
            await store.start_run("ongoing")
            deleted = await run_demo(store, artifact_root=tmp_path / "a")
            await store.delete_run(deleted)
            await store.register_component("alerter", "slack", flavor="slack")
            await store.register_component("alerter", "gone", flavor="slack")
            await store.delete_component("alerter", "gone")
            await store.register_stack(
                "spare", {"orchestrator": "default", "artifact_store": "default"}
            )
            await store.register_stack(
                "scrap", {"orchestrator": "default", "artifact_store": "default"}
            )
            await store.delete_stack("scrap")
            await views.catch_up()
            summary = await views.query.summary()
        assert (4, 2, "default", {"completed": 3, "failed": 1, "running": 1}) == (
            summary.components,
            summary.stacks,
            summary.active_stack,
            summary.runs,
        )
        assert (3 * DEMO_STEPS + 1, 3 * DEMO_ARTIFACTS) == (summary.steps, summary.artifacts)
