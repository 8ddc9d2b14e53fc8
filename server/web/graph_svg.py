"""Draw a :class:`~server.web.layout.Layout` as inline SVG markup.

Steps are square-cornered boxes filled by status; artifacts are pill-shaped
boxes in a neutral colour, so the two kinds differ by shape as well as colour
(colour alone fails readers who cannot tell the statuses apart). Each node is
an ``<a>`` with a ``<title>``: keyboard focusable, hover shows the full name.
Every string from the data is escaped; ``data-*`` attributes carry ids for
tests and the pan/zoom script.
"""

from __future__ import annotations

import functools
import html
import re

from markupsafe import Markup

from .layout import NODE_HEIGHT, NODE_WIDTH, Layout, PlacedEdge, PlacedNode

_UNSAFE = re.compile("[&<>\"']")


def escape(text: str) -> str:
    """``text`` safe in SVG text and quoted attributes (``& < > " '`` replaced).

    Most names hold none of them: one scan finds that and returns the text as is.
    """
    if _UNSAFE.search(text) is None:
        return text
    return html.escape(text, quote=True)


#: Characters of a label that fit a node box at the drawn font size.
LABEL_CHARS = 22


def _short(text: str, *, keep_end: bool, limit: int = LABEL_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, at its end or its start.

    Artifact names read ``pipeline.step.output``: their end tells them apart,
    so they lose their start; a step's name loses its end.
    """
    if len(text) <= limit:
        return text
    return "\u2026" + text[1 - limit :] if keep_end else text[: limit - 1] + "\u2026"


def _path(edge: PlacedEdge) -> str:
    """Smooth cubic segments between the route's points (horizontal tangents)."""
    (x0, y0), *rest = edge.points
    parts = [f"M{x0},{y0}"]
    for x1, y1 in rest:
        if y1 == y0:
            parts.append(f"L{x1},{y1}")
        else:
            bend = (x1 - x0) // 2
            parts.append(f"C{x0 + bend},{y0} {x1 - bend},{y1} {x1},{y1}")
        x0, y0 = x1, y1
    return "".join(parts)


#: A node's drawing in its own coordinates (the node's ``transform`` places it).
_SHAPES = {
    kind: f'<rect width="{NODE_WIDTH:g}" height="{NODE_HEIGHT:g}" rx="{radius:g}"/>'
    '<text x="12" y="17" class="label">'
    for kind, radius in (("artifact", NODE_HEIGHT // 2), ("step", 4))
}


@functools.cache
def _parts(kind: str, status: str | None, focused: bool) -> tuple[str, str, str]:
    """What nodes of one kind and status share: attributes, shape start, subtitle."""
    classes = f"node {escape(kind)} status-{escape(status or 'none')}" + (
        " focus" if focused else ""
    )
    subtitle = kind if status is None else f"{kind} \u00b7 {status}"
    return (
        f'class="{classes}" data-kind="{escape(kind)}"',
        _SHAPES.get(kind, _SHAPES["step"]),
        f'</text><text x="12" y="32" class="sub">{escape(subtitle)}</text>',
    )


def _node(placed: PlacedNode, focus: str | None) -> str:
    node = placed.node
    attributes, shape, subtitle = _parts(node.kind, node.status, node.id == focus)
    label = _short(node.label, keep_end=node.kind == "artifact")
    title = node.title or node.label
    href = node.href
    node_id = node.id
    # Nearly every node's strings hold nothing to escape: one scan of them all says
    # so (a quarter of the work of four); a node that does is escaped field by field.
    if _UNSAFE.search(f"{label}{title}{href or ''}{node_id}") is not None:
        label, title, node_id = escape(label), escape(title), escape(node_id)
        href = None if href is None else escape(href)
    if href is None:
        return (
            f'<g {attributes} tabindex="0" data-node-id="{node_id}" '
            f'transform="translate({placed.x},{placed.y})">'
            f"<title>{title}</title>{shape}{label}{subtitle}</g>"
        )
    return (
        f'<a href="{href}" {attributes} data-node-id="{node_id}" '
        f'transform="translate({placed.x},{placed.y})">'
        f"<title>{title}</title>{shape}{label}{subtitle}</a>"
    )


def render_svg(graph: Layout, *, label: str, focus: str | None = None) -> Markup:
    """The graph as one ``<svg>`` element, ``label`` its accessible name."""
    width = max(graph.width, NODE_WIDTH)
    height = max(graph.height, NODE_HEIGHT)
    edges = "".join(f'<path class="edge" d="{_path(e)}"/>' for e in graph.edges)
    nodes = "".join(_node(n, focus) for n in graph.nodes)
    return Markup(
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" data-panzoom '
        f'data-width="{width:.0f}" data-height="{height:.0f}" '
        f'data-nodes="{len(graph.nodes)}" data-edges="{len(graph.edges)}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs>'
        f'<g class="edges">{edges}</g><g class="nodes">{nodes}</g></svg>'
    )
