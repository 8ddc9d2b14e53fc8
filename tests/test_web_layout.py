"""The lineage page's server-side graph layout: deterministic, complete, never overlapping."""

from __future__ import annotations

import itertools
import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from server.web.graph_svg import render_svg
from server.web.layout import NODE_HEIGHT, NODE_WIDTH, Edge, Layout, Node, layout


def _pipeline(steps: int) -> tuple[list[Node], list[Edge]]:
    """A chain of steps, each producing an artifact the next one reads, plus a side input."""
    nodes = [Node("raw", "artifact", "raw")]
    edges = []
    previous = "raw"
    for i in range(steps):
        step, out = f"s{i}", f"a{i}"
        nodes += [Node(step, "step", f"step {i}", status="completed"), Node(out, "artifact", out)]
        edges += [Edge(previous, step), Edge(step, out), Edge("raw", step)]
        previous = out
    return nodes, edges


def _random_dag(seed: int, size: int) -> tuple[list[Node], list[Edge]]:
    rng = random.Random(seed)
    nodes = [Node(f"n{i:03}", "step" if i % 2 else "artifact", f"n{i}") for i in range(size)]
    edges = [
        Edge(f"n{i:03}", f"n{j:03}")
        for i in range(size)
        for j in rng.sample(range(i + 1, size), min(2, size - i - 1))
    ]
    return nodes, edges


def _assert_no_overlap(graph: Layout) -> None:
    by_layer: dict[int, list[float]] = {}
    for placed in graph.nodes:
        by_layer.setdefault(placed.layer, []).append(placed.y)
        assert 0 <= placed.x
        assert placed.x + NODE_WIDTH <= graph.width
        assert 0 <= placed.y
        assert placed.y + NODE_HEIGHT <= graph.height
    for ys in by_layer.values():
        ys.sort()
        assert all(b - a >= NODE_HEIGHT for a, b in itertools.pairwise(ys))


def test_edges_point_right_and_every_node_and_edge_is_placed() -> None:
    nodes, edges = _pipeline(5)
    graph = layout(nodes, edges)
    assert len(graph.nodes) == len(nodes)
    assert len(graph.edges) == len(set(edges)) == 15 - 1  # raw -> s0 twice
    layer = {p.node.id: p.layer for p in graph.nodes}
    assert all(layer[e.source] < layer[e.target] for e in edges)
    assert layer["raw"] == 0
    assert graph.layers == 11
    _assert_no_overlap(graph)


def test_the_layout_depends_only_on_the_input_not_its_order() -> None:
    nodes, edges = _random_dag(7, 60)
    first = layout(nodes, edges)
    rng = random.Random(1)
    shuffled_nodes, shuffled_edges = list(nodes), list(edges)
    rng.shuffle(shuffled_nodes)
    rng.shuffle(shuffled_edges)
    assert layout(shuffled_nodes, shuffled_edges) == first
    assert render_svg(first, label="g") == render_svg(layout(nodes, edges), label="g")


def test_a_long_edge_bends_through_the_layers_it_crosses() -> None:
    nodes = [Node(n, "step", n) for n in "abcd"]
    edges = [Edge("a", "b"), Edge("b", "c"), Edge("c", "d"), Edge("a", "d")]
    graph = layout(nodes, edges)
    long_edge = next(e for e in graph.edges if e.edge == Edge("a", "d"))
    # source side, two points per dummy in the two layers between, target side
    assert len(long_edge.points) == 2 + 2 * 2


def test_cycles_and_unknown_or_self_edges_do_not_break_it() -> None:
    nodes = [Node(n, "step", n) for n in "abc"]
    edges = [Edge("a", "b"), Edge("b", "c"), Edge("c", "a"), Edge("a", "a"), Edge("a", "zz")]
    graph = layout(nodes, edges)
    assert len(graph.nodes) == 3
    assert {(e.edge.source, e.edge.target) for e in graph.edges} == {
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
    }
    assert len(graph.reversed_edges) == 1
    _assert_no_overlap(graph)


def test_barycenter_ordering_removes_avoidable_crossings() -> None:
    # Two parallel chains whose ids would cross if ordered by id alone.
    nodes = [Node(n, "step", n) for n in ("a1", "a2", "b1", "b2")]
    edges = [Edge("a1", "b2"), Edge("a2", "b1")]
    graph = layout(nodes, edges)
    y = {p.node.id: p.y for p in graph.nodes}
    assert (y["a1"] < y["a2"]) == (y["b2"] < y["b1"])


def test_an_empty_graph_and_a_lone_node() -> None:
    assert layout([], []).nodes == ()
    lone = layout([Node("x", "artifact", "x")], [])
    assert len(lone.nodes) == 1
    assert 'data-nodes="1"' in render_svg(lone, label="g")


def test_five_hundred_nodes_lay_out_without_overlap() -> None:
    nodes, edges = _random_dag(3, 500)
    graph = layout(nodes, edges)
    assert len(graph.nodes) == 500
    assert len(graph.edges) == len({(e.source, e.target) for e in edges})
    _assert_no_overlap(graph)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=25).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
        )
    )
)
def test_any_graph_is_laid_out_completely_and_without_overlap(
    graph_input: tuple[int, list[tuple[int, int]]],
) -> None:
    size, pairs = graph_input
    nodes = [Node(str(i), "step", str(i)) for i in range(size)]
    edges = [Edge(str(a), str(b)) for a, b in pairs]
    graph = layout(nodes, edges)
    assert len(graph.nodes) == size
    assert len(graph.edges) == len({(a, b) for a, b in pairs if a != b})
    layer = {p.node.id: p.layer for p in graph.nodes}
    reversed_ = {(e.source, e.target) for e in graph.reversed_edges}
    for placed in graph.edges:
        source, target = placed.edge.source, placed.edge.target
        if (source, target) in reversed_:
            assert layer[source] > layer[target]
        else:
            assert layer[source] < layer[target]
    _assert_no_overlap(graph)


def test_the_svg_escapes_every_string_and_marks_node_kinds() -> None:
    hostile = '<script>alert("x")</script>'
    nodes = [
        Node("s", "step", hostile, status="failed", href='/runs/"x"'),
        Node("a", "artifact", "out & about"),
    ]
    svg = str(render_svg(layout(nodes, [Edge("s", "a")]), label=hostile))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "out &amp; about" in svg
    assert 'href="/runs/&quot;x&quot;"' in svg
    assert len(re.findall(r'class="node step status-failed"', svg)) == 1
    assert len(re.findall(r'class="node artifact status-none"', svg)) == 1
    assert len(re.findall(r'<path class="edge"', svg)) == 1


def test_a_lineage_drawing_is_kept_under_the_graphs_content() -> None:
    from projections.queries import LineageEdge, LineageGraph, LineageNode
    from server.web.lineage_graph import lineage_svg

    def graph(status: str) -> LineageGraph:
        return LineageGraph(
            roots=["a"],
            direction="both",
            depth=1,
            nodes=[
                LineageNode(id="a", kind="artifact", label="data:v1", run_id="r"),
                LineageNode(id="s", kind="step", label="train", run_id="r", status=status),
            ],
            edges=[LineageEdge(source="a", target="s", kind="consumed", name="data")],
        )

    def draw(g: LineageGraph, prefix: str = "") -> str:
        return lineage_svg(g, url=lambda path: prefix + path, label="g", focus="a")

    first = draw(graph("running"))
    assert draw(graph("running")) is first  # kept: the same content
    assert "status-completed" in draw(graph("completed"))  # new content, new drawing
    assert 'href="/past/runs/r"' in draw(graph("running"), "/past")  # links are part of the key
