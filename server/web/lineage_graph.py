"""A lineage graph from the read API drawn as the page's SVG: nodes link to their pages."""

from __future__ import annotations

import contextlib
import gc
from collections import OrderedDict
from collections.abc import Callable, Iterator

import msgspec
from markupsafe import Markup

from projections.queries import LineageGraph

from .graph_svg import render_svg
from .layout import Edge, Node, layout

#: Drawings kept, newest last: a graph's drawing depends only on its content.
CACHE_SIZE = 32
_drawn: OrderedDict[tuple[bytes, str, str | None, str], Markup] = OrderedDict()
_encoder = msgspec.json.Encoder()


def lineage_svg(
    graph: LineageGraph, *, url: Callable[[str], str], label: str, focus: str | None = None
) -> Markup:
    """``graph`` laid out left to right (inputs before the steps reading them), as SVG.

    The drawing is a pure function of the graph, the label, the focus and the
    links' form, so the last few drawings are kept under exactly that key: a
    graph viewed again (a reload, another reader) is not laid out again, and a
    graph that changed (a new run, another as-of) has another key.

    ``url`` turns a page path into a link (it keeps the page's ``as_of``).
    Steps link to their run's page, artifacts to theirs.
    """
    key = (_encoder.encode(graph), label, focus, url("/"))
    found = _drawn.get(key)
    if found is not None:
        _drawn.move_to_end(key)
        return found
    drawn = _draw(graph, url=url, label=label, focus=focus)
    _drawn[key] = drawn
    if len(_drawn) > CACHE_SIZE:
        _drawn.popitem(last=False)
    return drawn


def _draw(
    graph: LineageGraph, *, url: Callable[[str], str], label: str, focus: str | None
) -> Markup:
    """Lay the graph out and draw it (what :func:`lineage_svg` keeps)."""
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
    many live objects the collections they set off cost about as much as the
    layout itself (measured in process: the page's median from ~50 to ~36 ms).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
