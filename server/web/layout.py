"""A deterministic layered left-to-right layout of a directed acyclic graph.

The lineage page draws its graph on the server, so the picture is the same
for every browser, needs no JavaScript library and can be tested as data.
The method is the classic Sugiyama pipeline, kept small:

1. **Cycles** are broken by reversing the back edges a depth-first search in
   id order finds (lineage is acyclic, but a run reading its own output must
   not hang the page).
2. **Layers** by longest path from the sources: every edge points right.
3. **Dummy nodes** split an edge that spans several layers, so the ordering
   step sees it and long edges bend around nodes instead of through them.
4. **Order within a layer** by the barycenter of the neighbours in the layer
   before (sweeping right) or after (sweeping left), up to a few sweeps,
   stopping when a sweep removes no crossing, keeping the order with the
   fewest crossings; ties are broken by the previous order, so the result
   depends only on the input.
5. **Coordinates**: a layer is a column, a node a slot in it; columns are
   centred vertically. Nodes in one column never overlap by construction.

Everything here is a pure function of its input: same nodes and edges in, the
same geometry out (the order of the input lists does not matter).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

#: Geometry, in SVG user units.
NODE_WIDTH = 176.0
NODE_HEIGHT = 40.0
COLUMN_GAP = 84.0
ROW_GAP = 18.0
MARGIN = 16.0
#: Barycenter sweeps (each a right then a left pass); more rarely helps.
SWEEPS = 4


class Node(NamedTuple):
    """A node to lay out; ``kind`` and ``status`` only travel through to the drawing."""

    id: str
    kind: str
    label: str
    status: str | None = None
    href: str | None = None
    title: str | None = None


class Edge(NamedTuple):
    """A directed edge ``source -> target`` between two node ids."""

    source: str
    target: str


class PlacedNode(NamedTuple):
    """A node with its layer, its slot in the layer, and its top-left corner."""

    node: Node
    layer: int
    order: int
    x: float
    y: float


class PlacedEdge(NamedTuple):
    """An edge as a polyline: the source's right side, any bends, the target's left side."""

    edge: Edge
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """The laid-out graph: nodes in (layer, order) order, edges sorted, the canvas size."""

    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: float
    height: float
    layers: int = 0
    #: Edges reversed to break cycles (drawn in their true direction all the same).
    reversed_edges: tuple[Edge, ...] = field(default=())


def layout(nodes: Iterable[Node], edges: Iterable[Edge], *, sweeps: int = SWEEPS) -> Layout:
    """Lay ``nodes`` and ``edges`` out left to right; edges to unknown nodes are dropped."""
    by_id = {n.id: n for n in sorted(nodes, key=lambda n: n.id)}
    ids = sorted(by_id)
    unique = sorted(
        {(e.source, e.target) for e in edges if e.source in by_id and e.target in by_id}
        - {(i, i) for i in ids}
    )
    forward, back = _break_cycles(ids, unique)
    layer_of = _longest_path_layers(ids, forward)
    chains, layers = _with_dummies(ids, forward, layer_of)
    _order(layers, chains, sweeps)
    return _place(by_id, layers, chains, unique, back)


def _break_cycles(
    ids: Sequence[str], edges: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """The edges with each back edge reversed (iterative DFS in id order), and the back set."""
    out: dict[str, list[str]] = {i: [] for i in ids}
    for source, target in edges:
        out[source].append(target)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    for root in ids:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(out[child])))
    forward = sorted({(t, s) if (s, t) in back else (s, t) for s, t in edges})
    return forward, back


def _longest_path_layers(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: 0 for a source, else one more than its deepest predecessor."""
    incoming = dict.fromkeys(ids, 0)
    out: dict[str, list[str]] = {i: [] for i in ids}
    for source, target in edges:
        out[source].append(target)
        incoming[target] += 1
    layer = dict.fromkeys(ids, 0)
    ready = [i for i in ids if incoming[i] == 0]
    while ready:
        node = ready.pop()
        for target in out[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return layer


#: A chain is one original edge as the list of the ids it passes through (dummies inside).
Chain = list[str]


def _with_dummies(
    ids: Sequence[str], edges: Sequence[tuple[str, str]], layer_of: dict[str, int]
) -> tuple[list[Chain], list[list[str]]]:
    """Split edges longer than one layer with dummy ids; the members of each layer."""
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    # Initial order: by kind of appearance is meaningless here, so by id: deterministic.
    for node_id in ids:
        layers[layer_of[node_id]].append(node_id)
    chains: list[Chain] = []
    for source, target in edges:
        chain = [source]
        for layer in range(layer_of[source] + 1, layer_of[target]):
            dummy = f"\0{source}\0{target}\0{layer}"
            layers[layer].append(dummy)
            chain.append(dummy)
        chain.append(target)
        chains.append(chain)
    return chains, layers


def _order(layers: list[list[str]], chains: Sequence[Chain], sweeps: int) -> None:
    """Reorder each layer in place by barycenters, keeping the best order seen."""
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for chain in chains:
        for left, right in itertools.pairwise(chain):
            after.setdefault(left, []).append(right)
            before.setdefault(right, []).append(left)
    best = [list(layer) for layer in layers]
    best_crossings = _crossings(layers, after)
    for _ in range(sweeps):
        for index in range(1, len(layers)):
            _reorder(layers[index], layers[index - 1], before)
        for index in range(len(layers) - 2, -1, -1):
            _reorder(layers[index], layers[index + 1], after)
        crossings = _crossings(layers, after)
        if crossings >= best_crossings:
            break  # a sweep that does not help: the next ones seldom do
        best, best_crossings = [list(layer) for layer in layers], crossings
        if best_crossings == 0:
            break
    layers[:] = best


def _reorder(layer: list[str], fixed: Sequence[str], neighbours: dict[str, list[str]]) -> None:
    """Sort ``layer`` by the mean slot of each node's neighbours in ``fixed`` (stable)."""
    slot = {node: index for index, node in enumerate(fixed)}
    keys: dict[str, float] = {}
    for index, node in enumerate(layer):
        found = [slot[n] for n in neighbours.get(node, ()) if n in slot]
        # A node without neighbours there keeps its place: its own slot is its key.
        keys[node] = sum(found) / len(found) if found else float(index)
    position = {node: index for index, node in enumerate(layer)}
    layer.sort(key=lambda node: (keys[node], position[node]))


def _crossings(layers: Sequence[Sequence[str]], after: dict[str, list[str]]) -> int:
    """Edge crossings between adjacent layers (pairs of inverted edge endpoints)."""
    total = 0
    for left, right in itertools.pairwise(layers):
        slot = {node: index for index, node in enumerate(right)}
        # Edges as (left slot, right slot), sorted: crossings are inversions of the right slots.
        pairs = sorted(
            (index, slot[t]) for index, node in enumerate(left) for t in after.get(node, ())
        )
        total += _inversions([target for _, target in pairs])
    return total


def _inversions(values: list[int]) -> int:
    """How many pairs i < j have values[i] > values[j] (a sorted prefix and bisection)."""
    seen: list[int] = []
    count = 0
    for value in values:
        # Earlier values greater than this one: each is one inversion.
        count += len(seen) - bisect.bisect_right(seen, value)
        bisect.insort(seen, value)
    return count


def _place(
    by_id: dict[str, Node],
    layers: Sequence[Sequence[str]],
    chains: Sequence[Chain],
    edges: Sequence[tuple[str, str]],
    back: set[tuple[str, str]],
) -> Layout:
    """Coordinates: one column per layer, one row slot per member, columns centred."""
    tallest = max((len(layer) for layer in layers), default=0)
    height = 2 * MARGIN + max(tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP, 0.0)
    width = 2 * MARGIN + max(len(layers) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP, 0.0)
    corner: dict[str, tuple[float, float]] = {}
    placed: list[PlacedNode] = []
    for layer_index, layer in enumerate(layers):
        column = len(layer) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
        top = (height - column) / 2
        x = MARGIN + layer_index * (NODE_WIDTH + COLUMN_GAP)
        order = 0
        for slot, node_id in enumerate(layer):
            y = top + slot * (NODE_HEIGHT + ROW_GAP)
            corner[node_id] = (x, y)
            if node_id in by_id:
                placed.append(PlacedNode(by_id[node_id], layer_index, order, x, y))
                order += 1
    routes: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {}
    for chain in chains:
        points: list[tuple[float, float]] = []
        for index, node_id in enumerate(chain):
            x, y = corner[node_id]
            middle = y + NODE_HEIGHT / 2
            if index == 0:
                points.append((x + NODE_WIDTH, middle))
            elif index == len(chain) - 1:
                points.append((x, middle))
            else:  # a dummy: pass straight through its slot
                points.extend(((x, middle), (x + NODE_WIDTH, middle)))
        routes[(chain[0], chain[-1])] = tuple(points)
    placed_edges = []
    for source, target in edges:
        if (source, target) in back:
            route = tuple(reversed(routes[(target, source)]))
        else:
            route = routes[(source, target)]
        placed_edges.append(PlacedEdge(Edge(source, target), route))
    return Layout(
        nodes=tuple(placed),
        edges=tuple(placed_edges),
        width=width,
        height=height,
        layers=len(layers),
        reversed_edges=tuple(Edge(s, t) for s, t in sorted(back)),
    )
