"""From a Tensor's autograd graph to a plain graph of labelled nodes and edges, ready to lay out and render.

The forward graph has one node per Function (op, output shapes and dtypes, module, saved tensors), one per leaf
Tensor (a parameter's name, its shape and dtype, and its gradient: statistics once computed, "not computed"
before) and one for each output. The backward graph runs the other way: the gradient of the output enters the
backward of the last op, each op's backward sends gradients to the ops that made its inputs, and leaves that
require grad end in an "accumulate grad" node. ``group="module"`` folds the ops of each module call (at ``depth``
below the model) into one node, with its parameters; a parameter-free module that ran a single op (a pooling
layer) stays that op.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Sequence

from ..backend import get_array_module

__all__ = ["Node", "Edge", "Graph", "capture", "fold_modules", "module_calls", "module_label"]


@dataclasses.dataclass
class Node:
    """``kind``: "op", "leaf", "input" (a constant), "output", "grad" (the seed gradient of a backward graph),
    "accumulate" (a leaf's .grad in a backward graph), "module" or "saved". ``lines``: the label under the title;
    ``details``: everything the HTML page shows on click."""

    id: str
    kind: str
    title: str
    lines: list[str]
    details: dict[str, Any]
    module: str | None = None


@dataclasses.dataclass
class Edge:
    source: str
    target: str
    label: str = ""
    style: str = "solid"  # "dashed" for saved tensors


@dataclasses.dataclass
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    direction: str = "forward"


def describe(shape: Sequence[int] | None, dtype: Any) -> str:
    return "?" if shape is None else f"{tuple(shape)} {dtype}"


def grad_stats(tensor: Any) -> str:
    """A leaf's gradient as the drawing shows it: "not computed" until backward has run, never 0."""
    if not tensor.requires_grad:
        return "no grad (constant)"
    grad = tensor.grad
    if grad is None:
        return "grad: not computed"
    xp = get_array_module(grad.data)
    data = grad.data.astype(xp.float64)
    norm = float(xp.sqrt((data * data).sum()))
    return f"grad: norm {norm:.4g}, mean {float(data.mean()):.3g}, max |g| {float(xp.abs(data).max()):.3g}"


class _Builder:
    def __init__(self, params: dict[str, Any] | None, saved: bool):
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.ids: dict[Any, str] = {}
        self.names = {id(p): name for name, p in (params or {}).items()}
        self.saved = saved

    def add(self, key: Any, kind: str, title: str, lines: list[str], details: dict, module: str | None = None) -> str:
        node_id = self.ids.get(key)
        if node_id is None:
            node_id = self.ids[key] = f"n{len(self.nodes)}"
            self.nodes.append(Node(node_id, kind, title, lines, details, module))
        return node_id

    def leaf_name(self, tensor: Any, consumer: Any) -> str | None:
        name = self.names.get(id(tensor))
        call = getattr(consumer, "module_call", None)
        while name is None and call is not None:
            found = next((key for key, p in call.module._parameters.items() if p is tensor), None)
            if found is not None:
                name = f"{call.path}.{found}" if call.path else found
            call = call.parent
        return name

    def leaf(self, tensor: Any, consumer: Any) -> str:
        name = self.leaf_name(tensor, consumer)
        kind = "leaf" if tensor.requires_grad else "input"
        title = name or ("leaf" if tensor.requires_grad else "input")
        shape = describe(tensor.shape, tensor.dtype)
        stats = grad_stats(tensor)
        details = {"name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype), "grad": stats}
        return self.add(("tensor", id(tensor)), kind, title, [shape, stats], details)

    def op(self, function: Any, suffix: str = "") -> str:
        outputs = []
        for index, ref in enumerate(function._outputs):
            tensor = ref()
            if tensor is not None:
                outputs.append((tuple(tensor.shape), str(tensor.dtype)))
            elif hasattr(function, "_output_meta"):
                shape, dtype = function._output_meta[index]
                outputs.append((tuple(shape), str(dtype)))
            else:
                outputs.append((None, "?"))
        saved = saved_listing(function)
        module = getattr(function, "module_path", None)
        details = {"op": function.name, "module": module, "site": getattr(function, "site", None),
                   "inputs": [describe(t.shape, t.dtype) for t in function.inputs],
                   "outputs": [describe(s, d) for s, d in outputs], "saved": saved}
        lines = [describe(s, d) for s, d in outputs]
        node_id = self.add(("op", id(function)), "op", function.name + suffix, lines, details, module)
        self.nodes[int(node_id[1:])].details["_call"] = getattr(function, "module_call", None)
        if self.saved:
            for entry in saved:
                if entry["name"].startswith("inputs["):
                    continue
                saved_id = self.add(("saved", id(function), entry["name"]), "saved", "saved " + entry["name"],
                                    [entry["shape"]], entry, module)
                self.edges.append(Edge(saved_id, node_id, "", "dashed"))
        return node_id


def saved_listing(function: Any) -> list[dict[str, Any]]:
    """What a node keeps for backward: its inputs and its array attributes, with shapes, dtypes and bytes."""
    listing = [{"name": f"inputs[{i}]", "shape": describe(t.shape, t.dtype), "bytes": int(t.data.nbytes)}
               for i, t in enumerate(function.inputs)]
    for name, value in vars(function).items():
        if name.startswith("_") or name in ("inputs", "needs_input_grad") or not hasattr(value, "nbytes"):
            continue
        if hasattr(value, "shape") and not hasattr(value, "_creator"):
            listing.append({"name": name, "shape": describe(value.shape, value.dtype), "bytes": int(value.nbytes)})
    return listing


def _graph_roots(outputs: Sequence[Any]) -> list[Any]:
    functions = []
    for output in outputs:
        if not hasattr(output, "_creator"):
            raise TypeError(f"viz.graph: expected a Tensor, got {type(output).__name__}")
        creator = output._creator
        if creator is None:
            raise ValueError(f"viz.graph: the tensor of shape {tuple(output.shape)} {output.dtype} has no graph: it "
                             "is a leaf, or it was computed under no_grad or from tensors that do not require grad")
        functions.append(creator)
    return functions


def _walk(roots: list[Any]) -> list[Any]:
    """Every Function reachable from ``roots``, in discovery order (deterministic), checking none was freed."""
    order, seen, stack = [], set(), list(reversed(roots))
    while stack:
        function = stack.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        if getattr(function, "_released", False):
            raise RuntimeError(f"viz.graph: the graph was freed by backward() (its {function.name} node no longer "
                               "holds its inputs); draw it before backward, or call backward(retain_graph=True)")
        order.append(function)
        stack.extend(t._creator for t in reversed(function.inputs) if t._creator is not None)
    return order


def capture(outputs: Sequence[Any], backward: bool = False, saved: bool = False,
            params: dict[str, Any] | None = None) -> Graph:
    """The graph behind ``outputs`` (Tensors), forward or backward."""
    functions = _walk(_graph_roots(outputs))
    builder = _Builder(params, saved)
    if backward:
        return _backward_graph(builder, outputs, functions)
    for function in reversed(functions):  # producers first, so ids follow the forward order
        target = builder.op(function)
        for tensor in function.inputs:
            creator = tensor._creator
            source = builder.leaf(tensor, function) if creator is None else builder.op(creator)
            builder.edges.append(Edge(source, target, describe(tensor.shape, tensor.dtype)))
    for position, output in enumerate(outputs):
        name = "output" if len(outputs) == 1 else f"output {position}"
        node = builder.add(("output", position), "output", name,
                           [describe(output.shape, output.dtype)], {"shape": list(output.shape)})
        builder.edges.append(Edge(builder.op(output._creator), node, describe(output.shape, output.dtype)))
    return Graph(builder.nodes, builder.edges, "forward")


def _backward_graph(builder: _Builder, outputs: Sequence[Any], functions: list[Any]) -> Graph:
    for position, output in enumerate(outputs):
        seed = builder.add(("seed", position), "grad", "grad of output", [describe(output.shape, output.dtype)],
                           {"shape": list(output.shape)})
        builder.edges.append(Edge(seed, builder.op(output._creator, " backward"), describe(output.shape,
                                                                                          output.dtype)))
    for function in functions:  # consumers first: the order backward visits them
        source = builder.op(function, " backward")
        for tensor in function.inputs:
            if not tensor.requires_grad:
                continue
            creator = tensor._creator
            if creator is None:
                name = builder.leaf_name(tensor, function) or "leaf"
                target = builder.add(("accumulate", id(tensor)), "accumulate", f"{name}.grad +=",
                                     [describe(tensor.shape, tensor.dtype), grad_stats(tensor)],
                                     {"name": name, "grad": grad_stats(tensor)})
            else:
                target = builder.op(creator, " backward")
            builder.edges.append(Edge(source, target, describe(tensor.shape, tensor.dtype)))
    return Graph(builder.nodes, builder.edges, "backward")


def module_calls(graph: Graph, depth: int = 1) -> dict[str, Any]:
    """node id -> the module call (at ``depth`` below the model) it belongs to: the call that ran an op, or,
    for a parameter or saved tensor, the one call whose ops alone use it. Nodes outside modules are absent."""
    owner: dict[str, Any] = {}
    for node in graph.nodes:
        call = _call_at_depth(node.details.get("_call"), depth) if node.kind == "op" else None
        if call is not None:
            owner[node.id] = call
    touching: dict[str, set[str]] = defaultdict(set)
    for edge in graph.edges:
        touching[edge.source].add(edge.target)
        touching[edge.target].add(edge.source)
    for node in graph.nodes:
        if node.kind in ("leaf", "saved", "accumulate"):
            calls = {owner.get(other) for other in touching[node.id]}
            if len(calls) == 1 and None not in calls:
                owner[node.id] = calls.pop()
    return owner


def module_label(call: Any) -> str:
    return f"{call.path}: {type(call.module).__name__}"


def fold_modules(graph: Graph, depth: int = 1) -> Graph:
    """Fold each module call at ``depth`` below the model (its ops, and the parameters only they use) into one
    node; a parameter-free call that ran a single op stays that op."""
    owner = module_calls(graph, depth)
    ops: dict[Any, list[Node]] = defaultdict(list)
    for node in graph.nodes:
        if node.kind == "op" and node.id in owner:
            ops[owner[node.id]].append(node)
    module_ids: dict[Any, str] = {}
    modules: list[Node] = []
    for call, group in ops.items():
        if len(group) > 1 or any(True for _ in call.module.parameters()):
            module_ids[call] = f"m{len(modules)}"
            modules.append(Node(module_ids[call], "module", module_label(call), group[-1].lines,
                                {"module": call.path, "ops": [n.title for n in group],
                                 "outputs": group[-1].details.get("outputs")}, call.path))
    folded = {node_id: module_ids[call] for node_id, call in owner.items() if call in module_ids}
    edges, seen = [], set()
    for edge in graph.edges:
        source, target = folded.get(edge.source, edge.source), folded.get(edge.target, edge.target)
        if source != target and (source, target) not in seen:
            seen.add((source, target))
            edges.append(Edge(source, target, edge.label, edge.style))
    position: dict[str, int] = {}
    for index, node in enumerate(graph.nodes):  # a module node goes where its first member was
        position.setdefault(folded.get(node.id, node.id), index)
    kept = [n for n in graph.nodes if n.id not in folded] + modules
    return Graph(sorted(kept, key=lambda n: position[n.id]), edges, graph.direction)


def _call_at_depth(call: Any, depth: int) -> Any:
    """The module call ``depth`` levels below the outermost one, among ``call`` and its parents."""
    chain = []
    while call is not None:
        chain.append(call)
        call = call.parent
    chain.reverse()
    return chain[depth] if len(chain) > depth else None
