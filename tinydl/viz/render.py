"""Text formats of a captured graph: DOT, Mermaid, JSON, SVG and a self-contained HTML page.

The SVG and HTML are drawn from tinydl's own layout (:mod:`tinydl.viz.layout`); the HTML page embeds the SVG of
the op-level and the module-level drawings, the node details as JSON, and a few lines of inline JavaScript (click
a node to see its shapes, dtypes, saved tensors and gradient statistics; click a module's box to collapse it;
switch to the drawing with every module collapsed). It references nothing outside itself.
"""
from __future__ import annotations

import html as html_escape
import itertools
import json
from typing import Any

from .capture import Graph
from .layout import LINE_HEIGHT, PADDING, layout, node_size

__all__ = ["to_dot", "to_mermaid", "to_json", "to_svg", "to_html"]

_page_ids = itertools.count()

# fill colours by node kind: ops blue, parameters green, constants grey, outputs and gradients orange
COLOURS = {"op": "#dbe9f7", "leaf": "#d9f2d9", "input": "#eeeeee", "output": "#fde6c8", "grad": "#fde6c8",
           "accumulate": "#d9f2d9", "module": "#e8dcf5", "saved": "#fff7cc"}
SHAPES_DOT = {"op": "box", "leaf": "ellipse", "input": "ellipse", "output": "box", "grad": "box",
              "accumulate": "ellipse", "module": "box3d", "saved": "note"}


def _public(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if not k.startswith("_")}


Clusters = dict[str, list[str]]  # a module's label -> the ids of the nodes drawn inside its box


def to_dot(graph: Graph, clusters: Clusters | None = None) -> str:
    lines = ["digraph tinydl {", '  rankdir=TB;', '  node [fontname="monospace", fontsize=10, style=filled];']
    for node in graph.nodes:
        label = "\\n".join([node.title] + node.lines).replace('"', '\\"')
        lines.append(f'  {node.id} [label="{label}", shape={SHAPES_DOT[node.kind]}, '
                     f'fillcolor="{COLOURS[node.kind]}"];')
    for number, (label, members) in enumerate((clusters or {}).items()):
        lines.append(f'  subgraph cluster_{number} {{ label="{label}"; style=rounded; color=gray; '
                     f'{"; ".join(members)}; }}')
    for edge in graph.edges:
        style = ', style=dashed' if edge.style == "dashed" else ""
        lines.append(f"  {edge.source} -> {edge.target}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph, clusters: Clusters | None = None) -> str:
    brackets = {"op": ('["', '"]'), "module": ('[["', '"]]'), "saved": ('>"', '"]')}
    lines = ["flowchart TD"]
    for node in graph.nodes:
        opening, closing = brackets.get(node.kind, ('(["', '"])'))
        label = "<br/>".join(html_escape.escape(text, quote=False).replace('"', "#quot;")
                             for text in [node.title] + node.lines)
        lines.append(f"  {node.id}{opening}{label}{closing}")
    for number, (label, members) in enumerate((clusters or {}).items()):
        lines += [f'  subgraph c{number} ["{label}"]'] + [f"    {member}" for member in members] + ["  end"]
    for edge in graph.edges:
        arrow = "-.->" if edge.style == "dashed" else "-->"
        lines.append(f"  {edge.source} {arrow} {edge.target}")
    return "\n".join(lines) + "\n"


def to_json(graph: Graph) -> str:
    return json.dumps({
        "direction": graph.direction,
        "nodes": [{"id": n.id, "kind": n.kind, "title": n.title, "lines": n.lines, "module": n.module,
                   "details": _public(n.details)} for n in graph.nodes],
        "edges": [{"source": e.source, "target": e.target, "label": e.label, "style": e.style}
                  for e in graph.edges],
    }, indent=1, default=str)


def to_svg(graph: Graph, standalone: bool = True, clusters: Clusters | None = None) -> str:
    """The drawing as SVG; ``standalone=False`` leaves out the XML namespace (not needed inside HTML).

    With ``clusters`` (module label -> member node ids), each module call gets a box around its members, and a
    class ``collapsed-K`` on the ``<svg>`` element collapses module K: its members and the edges between them are
    hidden by the generated style rules and its box turns opaque, so the edges from outside end on the box."""
    sizes = {n.id: node_size(n.title, n.lines) for n in graph.nodes}
    placed = layout([n.id for n in graph.nodes], sizes, [(e.source, e.target) for e in graph.edges])
    margin = 10.0
    width, height = placed.width + 2 * margin, placed.height + 2 * margin + LINE_HEIGHT
    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    cluster_of = {member: k for k, members in enumerate((clusters or {}).values()) for member in members}
    parts = [f'<svg{namespace} width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="11">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    if clusters:
        rules = "".join(f".collapsed-{k} [data-cluster='{k}'].node, .collapsed-{k} [data-inside='{k}']"
                        f"{{display:none}} .collapsed-{k} [data-cluster='{k}'].cluster rect{{fill-opacity:1}} "
                        for k in range(len(clusters)))
        parts.append(f"<style>{rules}</style>")
    parts.append(f'<g transform="translate({margin},{margin + LINE_HEIGHT})">')
    for k, (label, members) in enumerate((clusters or {}).items()):
        boxes = [placed.boxes[m] for m in members]
        left = min(b.x - b.width / 2 for b in boxes) - PADDING
        right = max(b.x + b.width / 2 for b in boxes) + PADDING
        top = min(b.y for b in boxes) - PADDING
        bottom = max(b.y + b.height for b in boxes) + PADDING
        parts.append(f'<g class="cluster" data-cluster="{k}"><rect x="{left:.1f}" y="{top:.1f}" '
                     f'width="{right - left:.1f}" height="{bottom - top:.1f}" rx="6" fill="{COLOURS["module"]}" '
                     f'fill-opacity="0.35" stroke="#777" stroke-dasharray="5 3"/><text x="{left + 4:.1f}" '
                     f'y="{top - 3:.1f}" font-weight="bold">{html_escape.escape(label)} [+/-]</text></g>')
    for edge, route in zip(graph.edges, placed.routes):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in route)
        dash = ' stroke-dasharray="4 3"' if edge.style == "dashed" else ""
        title = f"<title>{html_escape.escape(edge.label)}</title>" if edge.label else ""
        inside = cluster_of.get(edge.source)
        within = f' data-inside="{inside}"' if inside is not None and inside == cluster_of.get(edge.target) else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="#555"{dash}{within} '
                     f'marker-end="url(#arrow)">{title}</polyline>')
    for node in graph.nodes:
        box = placed.boxes[node.id]
        left = box.x - box.width / 2
        radius = 12 if node.kind in ("leaf", "input", "accumulate") else 3
        cluster = f' data-cluster="{cluster_of[node.id]}"' if node.id in cluster_of else ""
        parts.append(f'<g class="node" data-id="{node.id}"{cluster}>'
                     f'<rect x="{left:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
                     f'rx="{radius}" fill="{COLOURS[node.kind]}" stroke="#333"/>')
        for row, text in enumerate([node.title] + node.lines):
            weight = ' font-weight="bold"' if row == 0 else ""
            parts.append(f'<text x="{box.x:.1f}" y="{box.y + PADDING / 2 + (row + 0.8) * LINE_HEIGHT:.1f}" '
                         f'text-anchor="middle"{weight}>{html_escape.escape(text)}</text>')
        parts.append("</g>")
    parts.append("</g></svg>")
    return "\n".join(parts) + "\n"


_SCRIPT = """
(function (DETAILS, ROOT_ID, START) {
  const root = document.getElementById(ROOT_ID);
  const views = root.querySelectorAll('.view');
  function show(name) {
    views.forEach(v => { v.style.display = v.dataset.view === name ? 'block' : 'none'; });
    root.querySelectorAll('button[data-view]').forEach(b => { b.disabled = b.dataset.view === name; });
  }
  root.querySelectorAll('button[data-view]').forEach(b => b.addEventListener('click', () => show(b.dataset.view)));
  root.querySelectorAll('g.cluster').forEach(g => g.addEventListener('click', () => {
    g.closest('svg').classList.toggle('collapsed-' + g.dataset.cluster);
  }));
  root.querySelectorAll('g.node').forEach(g => g.addEventListener('click', () => {
    const view = g.closest('.view').dataset.view;
    root.querySelector('.details').textContent = JSON.stringify(DETAILS[view][g.dataset.id], null, 2);
  }));
  show(START);
})"""


def to_html(op_graph: Graph, module_graph: Graph | None, title: str, full: bool = True,
            start: str = "ops", clusters: Clusters | None = None) -> str:
    """The page: the op-level drawing (click a module's box to collapse or expand it), the module-level one when
    given (a button switches; ``start`` says which shows first), and the details of the clicked node. Several such fragments can share a page (a notebook):
    each script only touches its own container."""
    root_id = f"tinydl-graph-{next(_page_ids)}"
    details = {"ops": {n.id: {"title": n.title, **_public(n.details)} for n in op_graph.nodes}}
    views = [f'<div class="view" data-view="ops">{to_svg(op_graph, standalone=False, clusters=clusters)}</div>']
    buttons = ['<button data-view="ops">ops</button>']
    if module_graph is not None:
        details["modules"] = {n.id: {"title": n.title, **_public(n.details)} for n in module_graph.nodes}
        views.append(f'<div class="view" data-view="modules">{to_svg(module_graph, standalone=False)}</div>')
        buttons.append('<button data-view="modules">collapse all modules</button>')
    data = json.dumps(details, default=str).replace("</", "<\\/")
    body = (f'<div class="tinydl-graph" id="{root_id}"><div>{"".join(buttons)}</div>'
            '<div style="display:flex;gap:12px;align-items:flex-start">'
            f'<div style="overflow:auto;max-width:75%">{"".join(views)}</div>'
            '<pre class="details" style="font-size:11px;min-width:280px">click a node</pre></div>'
            f'<script>{_SCRIPT}({data}, "{root_id}", "{start}");</script></div>')
    if not full:
        return body
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html_escape.escape(title)}</title>"
            "<style>g.node{cursor:pointer} button{margin-right:6px}</style></head>"
            f"<body>{body}</body></html>\n")
