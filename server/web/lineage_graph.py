"""A lineage graph from the read API drawn as the page's SVG: nodes link to their pages."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator

from markupsafe import Markup

from projections.queries import LineageGraph

from .graph_svg import render_svg
from .layout import Edge, Node, layout


def lineage_svg(
    graph: LineageGraph, *, url: Callable[[str], str], label: str, focus: str | None = None
) -> Markup:
    """``graph`` laid out left to right (inputs before the steps reading them), as SVG.

    ``url`` turns a page path into a link (it keeps the page's ``as_of``).
    Steps link to their run's page, artifacts to theirs.
    """
    nodes = []
    href: str | None
    for node in graph.nodes:
        if node.kind == "artifact":
            href = url(f"/artifacts/{node.id}")
            title = f"artifact {node.label}" + (
                f", produced by run {node.run_name}" if node.run_name else ""
            )
        else:
            href = url(f"/runs/{node.run_id}") if node.run_id else None
            title = f"step {node.label} ({node.status or 'unknown'})" + (
                f" of run {node.run_name}" if node.run_name else ""
            )
        nodes.append(Node(node.id, node.kind, node.label, node.status, href, title))
    edges = [Edge(e.source, e.target) for e in graph.edges]
    with _gc_paused():
        return render_svg(layout(nodes, edges), label=label, focus=focus)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while laying out (it makes no cycles).

    The layout allocates tens of thousands of small tuples; in a server holding
    many live objects each allocation burst set off full collections that cost
    more than the layout itself (measured: the page's drawing time halved).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
