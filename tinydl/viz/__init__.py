"""Graph drawings of tinydl's autograd graphs, laid out and rendered by tinydl itself (no Graphviz, no network).

    g = tinydl.viz.graph(loss, params=dict(model.named_parameters()))
    g.svg(); g.html(); g.dot(); g.mermaid(); g.json()    # strings
    g.save("step.html")                                  # the format from the suffix

``backward=True`` draws the backward graph; ``saved=True`` adds what each node keeps for backward;
``group="module"`` folds the ops of each module call into one node. In a notebook the object displays itself.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Sequence

from .capture import Graph, capture, fold_modules, module_calls, module_label
from .render import Clusters, to_dot, to_html, to_json, to_mermaid, to_svg

__all__ = ["graph", "GraphDrawing"]

FORMATS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid", ".json": "json", ".svg": "svg",
           ".html": "html", ".htm": "html"}


class GraphDrawing:
    """A captured graph and its renderings (see the module docstring)."""

    def __init__(self, ops: Graph, group: str, depth: int):
        self.ops, self.group, self.depth = ops, group, depth
        self.modules = fold_modules(ops, depth)
        self.shown = self.modules if group == "module" else self.ops

    @property
    def nodes(self) -> list:
        return self.shown.nodes

    @property
    def edges(self) -> list:
        return self.shown.edges

    def clusters(self) -> Clusters:
        """The op-level nodes of each module call, by label: boxes in the op-level DOT, Mermaid and HTML."""
        owner = module_calls(self.ops, self.depth)
        labels: dict[Any, str] = {}
        calls_of_path: dict[str, int] = {}
        for call in sorted(set(owner.values()), key=lambda call: call.index):  # number repeated calls in order
            calls_of_path[call.path] = calls_of_path.get(call.path, 0) + 1
            repeat = calls_of_path[call.path]
            labels[call] = module_label(call) + (f" (call {repeat})" if repeat > 1 else "")
        boxes: Clusters = {}
        for node_id, call in owner.items():
            boxes.setdefault(labels[call], []).append(node_id)
        return boxes

    def dot(self) -> str:
        return to_dot(self.shown, self.clusters() if self.group == "op" else None)

    def mermaid(self) -> str:
        return to_mermaid(self.shown, self.clusters() if self.group == "op" else None)

    def json(self) -> str:
        return to_json(self.shown)

    def svg(self) -> str:
        return to_svg(self.shown)

    def html(self, full: bool = True) -> str:
        """A self-contained page (``full=False``: a fragment for a notebook) with both the op-level and the
        module-level drawings."""
        start = "modules" if self.group == "module" else "ops"
        return to_html(self.ops, self.modules, f"tinydl {self.ops.direction} graph", full, start, self.clusters())

    def render(self) -> str:
        """SVG from Graphviz's ``dot`` when it is on the PATH, else tinydl's own :meth:`svg`."""
        executable = shutil.which("dot")
        if executable is None:
            return self.svg()
        return subprocess.run([executable, "-Tsvg"], input=self.dot(), capture_output=True, text=True,
                              check=True).stdout

    def save(self, path: str | os.PathLike) -> None:
        """Write the drawing; the format comes from the suffix (.dot/.gv, .mmd/.mermaid, .json, .svg, .html)."""
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in FORMATS:
            raise ValueError(f"viz.graph.save: cannot tell the format of {os.fspath(path)!r}; use one of the "
                             f"suffixes {', '.join(FORMATS)}")
        text = getattr(self, FORMATS[suffix])()
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            raise OSError(error.errno, f"viz.graph.save: cannot write {os.fspath(path)!r}: {error.strerror}") \
                from error

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_html_(self) -> str:
        return self.html(full=False)

    def __repr__(self) -> str:
        return f"<tinydl.viz graph: {len(self.nodes)} nodes, {len(self.edges)} edges, {self.ops.direction}>"


def graph(output: Any, backward: bool = False, saved: bool = False, group: str = "op",
          params: dict[str, Any] | None = None, depth: int = 1) -> GraphDrawing:
    """Capture the graph behind ``output`` (a Tensor or a sequence of Tensors). ``params`` names leaves
    (``dict(model.named_parameters())``); without it, names recorded by the modules are used."""
    if group not in ("op", "module"):
        raise ValueError(f"viz.graph: group must be 'op' or 'module', got {group!r}")
    outputs: Sequence[Any] = list(output) if isinstance(output, (list, tuple)) else [output]
    return GraphDrawing(capture(outputs, backward=backward, saved=saved, params=params), group, depth)
