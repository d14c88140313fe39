"""``tinydl.summary(model, example_input)``: a table of a model's modules, from one forward pass.

For every module: its output shape (of its first call; the number of calls when more than one), its parameters
(its own and its submodules'), the forward FLOPs of the ops run inside it and the bytes its nodes saved for
backward. Totals count every parameter once: a Parameter registered under two names (tied weights), or two
Parameters sharing one array, is one set of numbers, and a note says which names share it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from .autograd import enable_grad
from .profiler import profile
from .table import Table, format_bytes, format_count

__all__ = ["summary", "ModelSummary"]


class ModelSummary:
    """``str(summary)`` is the table; ``total_params``, ``trainable_params``, ``total_flops`` (forward, at the
    example input), ``saved_bytes`` and ``shared`` (lists of names that share one parameter) are attributes."""

    def __init__(self, table: Table, total_params: int, trainable_params: int, total_flops: int,
                 saved_bytes: int, shared: list[list[str]]):
        self.table, self.total_params, self.trainable_params = table, total_params, trainable_params
        self.total_flops, self.saved_bytes, self.shared = total_flops, saved_bytes, shared

    def __str__(self) -> str:
        return str(self.table)

    __repr__ = __str__


def _parameter_groups(model: Any) -> dict[int, list[tuple[str, Any]]]:
    """Parameters grouped by the memory they own (one group per distinct array), with every name of each."""
    groups: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    for name, parameter in model.named_parameters(remove_duplicate=False):
        array = parameter.data
        owner = array.base if getattr(array, "base", None) is not None else array
        groups[id(owner)].append((name, parameter))
    return groups


def summary(model: Any, *example_inputs: Any, **example_kwargs: Any) -> ModelSummary:
    """Run ``model(*example_inputs, **example_kwargs)`` once (grad on, nothing else changed) and tabulate it."""
    outputs: dict[str, list] = {}
    handles = []
    for path, module in model.named_modules():
        def remember(module: Any, args: tuple, output: Any, path: str = path) -> None:
            entry = outputs.setdefault(path, [None, 0])
            if entry[0] is None:
                entry[0] = _shapes(output)
            entry[1] += 1
        handles.append(module.register_forward_hook(remember))
    try:
        with enable_grad(), profile(flops=True, memory=True) as prof:
            model(*example_inputs, **example_kwargs)
    finally:
        for handle in handles:
            handle.remove()
    flops: dict[str, int] = defaultdict(int)
    saved: dict[str, int] = defaultdict(int)
    uncounted: set[str] = set()
    for record in prof.records:
        if record.module_path is None:
            continue
        parts = record.module_path.split(".") if record.module_path else []
        for depth in range(len(parts) + 1):
            path = ".".join(parts[:depth])
            saved[path] += record.saved_bytes
            if record.flops is None:
                uncounted.add(path)
            else:
                flops[path] += record.flops
    groups = _parameter_groups(model)
    owner_of = {id(p): key for key, members in groups.items() for _, p in members}
    rows = []
    for path, module in model.named_modules():
        own = {owner_of[id(p)]: p for p in module.parameters()}
        shape, calls = outputs.get(path, [None, 0])
        rows.append({
            "module": ("  " * path.count(".") + path.rsplit(".", 1)[-1]) if path else "(model)",
            "type": type(module).__name__,
            "output shape": "-" if shape is None else shape + (f" (x{calls} calls)" if calls > 1 else ""),
            "params": f"{sum(p.size for p in own.values()):,}",
            "FLOPs": "not counted" if path in uncounted else format_count(flops.get(path, 0)),
            "saved": format_bytes(saved.get(path, 0)),
        })
    firsts = [members[0][1] for members in groups.values()]
    total = sum(p.size for p in firsts)
    trainable = sum(p.size for p in firsts if p.requires_grad)
    shared = [[name for name, _ in members] for members in groups.values() if len(members) > 1]
    notes = [f"total params {total:,} (trainable {trainable:,}); forward FLOPs {format_count(flops.get('', 0))} "
             f"at the example input; saved for backward {format_bytes(saved.get('', 0))}"]
    notes += [f"note: {' = '.join(names)} share one parameter, counted once" for names in shared]
    table = Table(["module", "type", "output shape", "params", "FLOPs", "saved"], rows, notes)
    return ModelSummary(table, total, trainable, flops.get("", 0), saved.get("", 0), shared)


def _shapes(output: Any) -> str:
    if hasattr(output, "shape"):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        return "(" + ", ".join(_shapes(o) for o in output) + ")"
    return type(output).__name__
