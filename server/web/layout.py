"""A deterministic layered left-to-right layout of a directed acyclic graph.

The lineage page draws its graph on the server, so the picture is the same
for every browser, needs no JavaScript library and can be tested as data.
The method is the classic Sugiyama pipeline, kept small:

1. **Cycles** are broken by reversing the back edges a depth-first search in
   id order finds (lineage is acyclic, but a run reading its own output must
   not hang the page); the search runs only when layering finds a cycle.
2. **Layers** by longest path from the sources: every edge points right.
3. **Dummy nodes** split an edge that spans several layers, so the ordering
   step sees it and long edges bend around nodes instead of through them.
4. **Order within a layer**: first a depth-first order from the sources (in
   id order), which keeps siblings together and draws parallel chains
   without crossings; then, unless there are none, the barycenter of the
   neighbours in the layer before (sweeping right) or after (sweeping left),
   up to a few sweeps, stopping when a sweep removes no crossing, keeping the
   order with the fewest crossings; ties are broken by the previous order, so
   the result depends only on the input.
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

#: Geometry, in SVG user units: whole numbers, so every coordinate is one (cheap to print).
NODE_WIDTH = 176
NODE_HEIGHT = 40
COLUMN_GAP = 84
ROW_GAP = 18
MARGIN = 16
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
    x: int
    y: int


class PlacedEdge(NamedTuple):
    """An edge as a polyline: the source's right side, any bends, the target's left side."""

    edge: Edge
    points: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """The laid-out graph: nodes in (layer, order) order, edges sorted, the canvas size."""

    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: int
    height: int
    layers: int = 0
    #: Edges reversed to break cycles (drawn in their true direction all the same).
    reversed_edges: tuple[Edge, ...] = field(default=())


def layout(nodes: Iterable[Node], edges: Iterable[Edge], *, sweeps: int = SWEEPS) -> Layout:
    """Lay ``nodes`` and ``edges`` out left to right; edges to unknown nodes are dropped."""
    by_id = {n.id: n for n in nodes}
    # The work is done on numbers, nodes numbered in id order (then dummies after them):
    # list lookups instead of hashing ids, and the same order whatever the input's.
    ids = sorted(by_id)
    number = {node_id: index for index, node_id in enumerate(ids)}
    pairs = sorted(
        {
            (number[e.source], number[e.target])
            for e in edges
            if e.source in number and e.target in number and e.source != e.target
        }
    )
    # Lineage is acyclic: layering (a topological walk) finds that without a search
    # for back edges, which only a graph with a cycle then needs.
    layer_of = _longest_path_layers(len(ids), pairs)
    forward: list[tuple[int, int]] = pairs
    back: set[tuple[int, int]] = set()
    if layer_of is None:
        forward, back = _break_cycles(len(ids), pairs)
        layer_of = _longest_path_layers(len(ids), forward)
        assert layer_of is not None  # the back edges reversed, no cycle is left
    chains, layers = _with_dummies(len(ids), forward, layer_of)
    _order(layers, chains, sweeps)
    return _place([by_id[i] for i in ids], layers, chains, pairs, back)


def _break_cycles(
    count: int, edges: Sequence[tuple[int, int]]
) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """The edges with each back edge reversed (iterative DFS in node order), and the back set."""
    out: list[list[int]] = [[] for _ in range(count)]
    for source, target in edges:
        out[source].append(target)
    state = [0] * count  # 0 unseen, 1 on the stack, 2 done
    back: set[tuple[int, int]] = set()
    for root in range(count):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state[child] == 1:
                back.add((node, child))
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(out[child])))
    if not back:
        return list(edges), back
    forward = sorted({(t, s) if (s, t) in back else (s, t) for s, t in edges})
    return forward, back


def _longest_path_layers(count: int, edges: Sequence[tuple[int, int]]) -> list[int] | None:
    """Each node's layer: 0 for a source, else one more than its deepest predecessor.

    None when the edges hold a cycle (the walk then cannot reach every node).
    """
    incoming = [0] * count
    out: list[list[int]] = [[] for _ in range(count)]
    for source, target in edges:
        out[source].append(target)
        incoming[target] += 1
    layer = [0] * count
    ready = [i for i in range(count) if incoming[i] == 0]
    reached = 0
    while ready:
        node = ready.pop()
        reached += 1
        below = layer[node] + 1
        for target in out[node]:
            if layer[target] < below:
                layer[target] = below
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return layer if reached == count else None


#: A chain is one edge as the nodes it passes through (dummy nodes inside).
Chain = list[int]


def _with_dummies(
    count: int, edges: Sequence[tuple[int, int]], layer_of: Sequence[int]
) -> tuple[list[Chain], list[list[int]]]:
    """Split edges longer than one layer with dummy nodes (numbered from ``count`` on)."""
    layers: list[list[int]] = [[] for _ in range(max(layer_of, default=-1) + 1)]
    # Initial order: depth first from the sources (in id order, children in id
    # order), so a node starts next to its siblings and parallel chains do not
    # cross: the sweeps then often have nothing to do. Deterministic.
    for node in _depth_first(count, edges):
        layers[layer_of[node]].append(node)
    chains: list[Chain] = []
    dummy = count
    for source, target in edges:
        chain = [source]
        for layer in range(layer_of[source] + 1, layer_of[target]):
            layers[layer].append(dummy)
            chain.append(dummy)
            dummy += 1
        chain.append(target)
        chains.append(chain)
    return chains, layers


def _depth_first(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Every node once, in depth-first preorder from the sources (sorted edges: id order)."""
    out: list[list[int]] = [[] for _ in range(count)]
    has_input = [False] * count
    for source, target in edges:
        out[source].append(target)
        has_input[target] = True
    seen = [False] * count
    order: list[int] = []
    for root in range(count):
        if has_input[root] or seen[root]:
            continue
        stack = [root]
        while stack:
            node = stack.pop()
            if seen[node]:
                continue
            seen[node] = True
            order.append(node)
            stack.extend(reversed(out[node]))
    return order


def _order(layers: list[list[int]], chains: Sequence[Chain], sweeps: int) -> None:
    """Reorder each layer in place by barycenters, keeping the best order seen."""
    total = sum(len(layer) for layer in layers)
    before: list[list[int]] = [[] for _ in range(total)]
    after: list[list[int]] = [[] for _ in range(total)]
    for chain in chains:
        for left, right in itertools.pairwise(chain):
            after[left].append(right)
            before[right].append(left)
    # Each node's slot in its own layer (a node is in exactly one layer).
    slot = [0] * total
    for layer in layers:
        for index, node in enumerate(layer):
            slot[node] = index
    best = [list(layer) for layer in layers]
    best_crossings = _crossings(layers, after, slot)
    for _ in range(sweeps if best_crossings else 0):
        for index in range(1, len(layers)):
            _reorder(layers[index], before, slot)
        for index in range(len(layers) - 2, -1, -1):
            _reorder(layers[index], after, slot)
        crossings = _crossings(layers, after, slot)
        if crossings >= best_crossings:
            break  # a sweep that does not help: the next ones seldom do
        best, best_crossings = [list(layer) for layer in layers], crossings
        if best_crossings == 0:
            break
    layers[:] = best


def _reorder(layer: list[int], neighbours: Sequence[list[int]], slot: list[int]) -> None:
    """Sort ``layer`` by the mean slot of each node's neighbours (stable), then renumber.

    The neighbours all sit in the adjacent layer being swept from: every edge
    spans one layer once the dummies are in.
    """
    keyed: list[tuple[float, int, int]] = []
    for index, node in enumerate(layer):
        found = neighbours[node]
        # A node without neighbours there keeps its place: its own slot is its key.
        # (Most lineage nodes have one neighbour each way: no sum, no division.)
        if len(found) == 1:
            key: float = slot[found[0]]
        elif found:
            key = sum([slot[n] for n in found]) / len(found)
        else:
            key = index
        keyed.append((key, index, node))
    # Sorting the tuples themselves (ties by the old index, never reaching the node)
    # is cheaper than a key function; the result is the same stable order.
    keyed.sort()
    layer[:] = [node for _, _, node in keyed]
    for index, node in enumerate(layer):
        slot[node] = index


def _crossings(layers: Sequence[Sequence[int]], after: Sequence[list[int]], slot: list[int]) -> int:
    """Edge crossings between adjacent layers (pairs of inverted edge endpoints)."""
    total = 0
    for left in layers[:-1]:
        # Edges as (left slot, right slot), sorted: crossings are inversions of the right slots.
        pairs = sorted((slot[node], slot[t]) for node in left for t in after[node])
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


#: Builds a named tuple from a ready tuple without its Python-level ``__new__``
#: (a third of the cost, for the thousands the placing makes).
_new = tuple.__new__


def _place(
    nodes: Sequence[Node],
    layers: Sequence[Sequence[int]],
    chains: Sequence[Chain],
    edges: Sequence[tuple[int, int]],
    back: set[tuple[int, int]],
) -> Layout:
    """Coordinates: one column per layer, one row slot per member, columns centred."""
    count = len(nodes)
    tallest = max((len(layer) for layer in layers), default=0)
    height = 2 * MARGIN + max(tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP, 0)
    width = 2 * MARGIN + max(len(layers) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP, 0)
    total = sum(len(layer) for layer in layers)
    xs = [0] * total
    ys = [0] * total
    placed: list[PlacedNode] = []
    for layer_index, layer in enumerate(layers):
        column = len(layer) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
        top = (height - column) // 2
        x = MARGIN + layer_index * (NODE_WIDTH + COLUMN_GAP)
        order = 0
        for row, node in enumerate(layer):
            y = top + row * (NODE_HEIGHT + ROW_GAP)
            xs[node] = x
            ys[node] = y
            if node < count:
                placed.append(_new(PlacedNode, (nodes[node], layer_index, order, x, y)))
                order += 1
    middle = NODE_HEIGHT // 2
    ids = [node.id for node in nodes]
    if not back:
        # An acyclic graph (lineage): one chain per edge, in the edges' order.
        placed_edges = [
            _new(
                PlacedEdge,
                (_new(Edge, (ids[chain[0]], ids[chain[-1]])), _route(chain, xs, ys, middle)),
            )
            for chain in chains
        ]
        return Layout(
            nodes=tuple(placed),
            edges=tuple(placed_edges),
            width=width,
            height=height,
            layers=len(layers),
        )
    routes = {(chain[0], chain[-1]): _route(chain, xs, ys, middle) for chain in chains}
    placed_edges = [
        PlacedEdge(
            Edge(nodes[source].id, nodes[target].id),
            tuple(reversed(routes[(target, source)]))
            if (source, target) in back
            else routes[(source, target)],
        )
        for source, target in edges
    ]
    return Layout(
        nodes=tuple(placed),
        edges=tuple(placed_edges),
        width=width,
        height=height,
        layers=len(layers),
        reversed_edges=tuple(Edge(nodes[s].id, nodes[t].id) for s, t in sorted(back)),
    )


def _route(chain: Chain, xs: list[int], ys: list[int], middle: int) -> tuple[tuple[int, int], ...]:
    """An edge's points: the source's right side, through its dummies' slots, the target."""
    source, target = chain[0], chain[-1]
    if len(chain) == 2:  # most edges: straight from one layer to the next
        return ((xs[source] + NODE_WIDTH, ys[source] + middle), (xs[target], ys[target] + middle))
    points = [(xs[source] + NODE_WIDTH, ys[source] + middle)]
    for dummy in chain[1:-1]:  # pass straight through the dummy's slot
        y = ys[dummy] + middle
        points += ((xs[dummy], y), (xs[dummy] + NODE_WIDTH, y))
    points.append((xs[target], ys[target] + middle))
    return tuple(points)
