"""A layered (Sugiyama-style) layout, top to bottom, written for tinydl's graphs (no Graphviz needed).

1. Layers: the longest path from the sources (each node one layer below its lowest producer); then each source
   (a parameter, an input) moves down to just above its first consumer, so weights sit next to their op.
2. Long edges are cut into one-layer pieces by invisible dummy nodes, so edges can bend around nodes; an edge
   longer than ``MAX_ROUTED_SPAN`` layers (a weight shared by every step of a long recurrence) is drawn straight
   instead, which keeps the number of dummies linear in the size of the graph.
3. Crossing reduction: a few sweeps down and up the layers, each sorting a layer by the barycentre (mean
   position) of its neighbours in the layer before.
4. Coordinates: nodes are sized from their labels, pulled towards the mean x of their neighbours, and pushed
   apart left to right so that none overlap; layers are stacked with room for the tallest node.

Everything is linear or n log n per sweep, so a graph of a few thousand nodes lays out in well under a second.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Sequence

__all__ = ["Box", "Layout", "layout"]

CHAR_WIDTH, LINE_HEIGHT, PADDING, GAP_X, GAP_Y = 7.0, 15.0, 8.0, 24.0, 42.0
SWEEPS = 4
MAX_ROUTED_SPAN = 8


@dataclasses.dataclass
class Box:
    x: float  # centre
    y: float  # top
    width: float
    height: float


@dataclasses.dataclass
class Layout:
    boxes: dict[str, Box]
    routes: list[list[tuple[float, float]]]  # one polyline per edge, in the order of the edges given
    width: float
    height: float


def _layers(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    producers, consumers = defaultdict(list), defaultdict(list)
    for source, target in edges:
        producers[target].append(source)
        consumers[source].append(target)
    indegree = {n: len(producers[n]) for n in ids}
    ready = [n for n in ids if indegree[n] == 0]
    layer = {n: 0 for n in ids}
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for target in consumers[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    for node in ids:
        if not producers[node] and consumers[node]:
            layer[node] = max(min(layer[t] for t in consumers[node]) - 1, 0)
    return layer


def layout(ids: Sequence[str], sizes: dict[str, tuple[float, float]], edges: Sequence[tuple[str, str]]) -> Layout:
    """Positions for nodes ``ids`` of ``sizes`` (width, height) joined by ``edges`` (source, target) of a DAG."""
    layer = _layers(ids, edges)
    chains: list[list[str]] = []  # per edge: the nodes it passes through, dummies included
    down: dict[str, list[str]] = defaultdict(list)
    up: dict[str, list[str]] = defaultdict(list)
    dummy = 0
    for source, target in edges:
        chain = [source]
        span = layer[target] - layer[source]
        for level in range(layer[source] + 1, layer[target] if span <= MAX_ROUTED_SPAN else 0):
            name = f"_d{dummy}"
            dummy += 1
            layer[name] = level
            chain.append(name)
        chain.append(target)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain)
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for node in list(ids) + [n for n in layer if n.startswith("_d")]:
        rows[layer[node]].append(node)
    position = {n: i for row in rows for i, n in enumerate(row)}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        sequence = rows[1:] if downward else rows[-2::-1]
        for row in sequence:
            neighbours = up if downward else down
            centre = {n: (sum(position[m] for m in neighbours[n]) / len(neighbours[n]) if neighbours[n]
                          else position[n]) for n in row}
            row.sort(key=lambda n: centre[n])
            for i, n in enumerate(row):
                position[n] = i
    size = {n: sizes.get(n, (0.0, 0.0)) for n in layer}
    x: dict[str, float] = {}
    for row in rows:
        cursor = 0.0
        for n in row:
            x[n] = cursor + size[n][0] / 2
            cursor += size[n][0] + (GAP_X if not n.startswith("_d") else GAP_X / 2)
    for sweep in range(SWEEPS):
        for row in (rows if sweep % 2 == 0 else rows[::-1]):
            wanted = {n: (sum(x[m] for m in up[n] + down[n]) / len(up[n] + down[n]) if up[n] + down[n] else x[n])
                      for n in row}
            _place(row, wanted, size, x)
    shift = min((x[n] - size[n][0] / 2 for n in x), default=0.0)
    top, y = 0.0, {}
    for row in rows:
        for n in row:
            y[n] = top
        top += max((size[n][1] for n in row), default=0.0) + GAP_Y
    boxes = {n: Box(x[n] - shift, y[n], *size[n]) for n in layer}
    routes = []
    for chain in chains:
        first, last = boxes[chain[0]], boxes[chain[-1]]
        points = [(first.x, first.y + first.height)]
        points += [(boxes[n].x, boxes[n].y) for n in chain[1:-1]]
        points.append((last.x, last.y))
        routes.append(points)
    width = max((b.x + b.width / 2 for b in boxes.values()), default=0.0)
    return Layout({n: boxes[n] for n in ids}, routes, width, max(top - GAP_Y, 0.0))


def _place(row: list[str], wanted: dict[str, float], size: dict[str, tuple[float, float]],
           x: dict[str, float]) -> None:
    """Move each node of ``row`` towards ``wanted`` keeping the order and a gap between neighbours: a left to
    right pass that pushes overlapping nodes right, then a right to left pass that averages the two."""
    gap = GAP_X / 2
    left = []
    cursor = float("-inf")
    for n in row:
        position = max(wanted[n], cursor + size[n][0] / 2)
        left.append(position)
        cursor = position + size[n][0] / 2 + gap
    cursor = float("inf")
    for i in range(len(row) - 1, -1, -1):
        n = row[i]
        position = min(wanted[n], cursor - size[n][0] / 2)
        cursor = position - size[n][0] / 2 - gap
        left[i] = (left[i] + position) / 2
    cursor = float("-inf")
    for i, n in enumerate(row):  # the average can overlap again: a last push to the right
        x[n] = max(left[i], cursor + size[n][0] / 2)
        cursor = x[n] + size[n][0] / 2 + gap


def node_size(title: str, lines: Sequence[str]) -> tuple[float, float]:
    """Width and height of a node drawn with ``title`` over ``lines`` in a monospace font."""
    longest = max([len(title)] + [len(line) for line in lines])
    return longest * CHAR_WIDTH + 2 * PADDING, (1 + len(lines)) * LINE_HEIGHT + PADDING
