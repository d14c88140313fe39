"""An op profiler: time, FLOPs, bytes moved and bytes saved for backward, per op and phase, per module, and as a
Chrome/Perfetto trace.

    with tinydl.profiler.profile(flops=True, memory=True) as prof:
        loss = loss_fn(model(x), y)
        loss.backward()
    print(prof.table())          # per op and phase
    print(prof.by_module())      # forward and backward time per module
    prof.total_flops()           # forward plus backward
    prof.export_chrome_trace("step.json")   # open in https://ui.perfetto.dev (the file stays on your machine)

It subscribes to the engine's op events (:mod:`tinydl.events`). A forward call is timed around ``forward``; a
backward step around the node's ``backward``, and the ops that backward formula calls are nested in it: the step's
*total* time includes them, its *self* time does not, and its FLOPs are theirs plus what the backward computes on
raw arrays itself (:mod:`tinydl.costs`). Shares are of the summed top-level time.

On CuPy, each op is also timed with a pair of CUDA events (GPU time, which the host clock cannot see because
kernels run asynchronously); nothing is synchronised unless ``sync=True`` (then every op waits for its kernels, so
host times are GPU times too, at a cost). The events are read when a report is made.
"""
from __future__ import annotations

import json
import os
import time
import weakref
from collections import defaultdict
from typing import Any

from . import costs, events
from .events import OpEvent
from .table import Table, format_bytes, format_count

__all__ = ["profile", "OpRecord"]


class OpRecord:
    """One profiled call: ``op``, ``phase``, ``nested`` (called by a backward formula), ``module_path``,
    ``start_ns``/``end_ns`` (host clock), ``child_ns`` (time of nested calls), ``flops`` (None: not counted),
    ``bytes_moved``, ``saved_bytes`` (kept alive for backward by the node), shapes, and the CUDA event pair."""

    __slots__ = ("op", "phase", "nested", "op_id", "module_path", "start_ns", "end_ns", "child_ns", "flops",
                 "bytes_moved", "saved_bytes", "input_shapes", "output_shapes", "cuda_events")

    def __init__(self, event: OpEvent):
        self.op, self.phase, self.nested, self.op_id = event.op, event.phase, event.parent is not None, event.op_id
        self.module_path, self.start_ns, self.end_ns = event.module_path, event.start, event.end
        self.input_shapes, self.output_shapes = event.shapes(event.inputs), event.shapes(event.outputs)
        self.child_ns, self.flops, self.bytes_moved, self.saved_bytes = 0, None, 0, 0
        self.cuda_events: Any = None

    @property
    def seconds(self) -> float:
        """Duration: GPU time from the CUDA events when there are any, else host time."""
        if self.cuda_events is not None:
            import cupy
            start, stop = self.cuda_events
            stop.synchronize()
            return cupy.cuda.get_elapsed_time(start, stop) * 1e-3
        return (self.end_ns - self.start_ns) * 1e-9

    @property
    def self_seconds(self) -> float:
        return max(self.seconds - self.child_ns * 1e-9, 0.0)


class profile:
    """Context manager that records every op of this thread; see the module docstring. ``flops`` and ``memory``
    switch the FLOP/byte counts and the saved-bytes accounting; ``sync`` synchronises the GPU after every op."""

    wants_site = False

    def __init__(self, flops: bool = True, memory: bool = True, sync: bool = False):
        self.flops, self.memory, self.sync = flops, memory, sync
        self.records: list[OpRecord] = []
        self.live_saved: list[tuple[int, int]] = []  # (time ns, bytes saved for backward and alive)
        self._live = 0
        self._holding: dict[int, tuple[Any, list[int]]] = {}  # id(node) -> (weakref, ids of its saved arrays)
        self._arrays: dict[int, list[int]] = {}  # id(array) -> [nbytes, number of nodes holding it]
        self._finalizers: list[weakref.finalize] = []
        self._stepped: list[int] = []  # nodes whose backward step just ran: released by the engine right after

    # ------------------------------------------------------------------------------------- subscription
    def __enter__(self) -> "profile":
        if any(isinstance(s, profile) for s in events.subscribers()):
            raise RuntimeError("profile: a profiler is already running in this thread; profilers do not nest "
                               "(end the outer one first, or profile a smaller region with one profiler)")
        events.subscribe(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        events.unsubscribe(self)
        self._sweep_released()
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()

    def begin(self, event: OpEvent) -> None:
        if event.phase == "backward" and event.parent is None:
            self._sweep_released()
        event.data[self] = OpRecord(event)
        if _is_cupy(event.inputs):
            import cupy
            start = cupy.cuda.Event()
            start.record()
            event.data[self].cuda_events = (start, None)

    def end(self, event: OpEvent) -> None:
        record: OpRecord = event.data[self]
        record.start_ns, record.end_ns, record.output_shapes = event.start, event.end, event.shapes(event.outputs)
        if record.cuda_events is not None:
            import cupy
            stop = cupy.cuda.Event()
            stop.record()
            record.cuda_events = (record.cuda_events[0], stop)
            if self.sync:
                stop.synchronize()
        step = event.phase == "backward" and event.parent is None
        if self.flops:
            if step:
                own = costs.backward_flops(event.function, event.inputs, event.outputs)
                record.flops = None if event.data.get("uncounted") else own + event.data.get("child_flops", 0)
            else:
                record.flops = costs.forward_flops(event.function, event.inputs, event.outputs)
            record.bytes_moved += costs.bytes_moved(event.function, event.inputs, event.outputs)
        if step:
            self._stepped.append(id(event.function))
            record.child_ns = event.data.get("child_ns", 0)
            record.bytes_moved += event.data.get("child_bytes", 0)
        elif event.parent is not None:
            parent = event.parent.data
            parent["child_ns"] = parent.get("child_ns", 0) + event.end - event.start
            parent["child_bytes"] = parent.get("child_bytes", 0) + record.bytes_moved
            if record.flops is None:
                parent["uncounted"] = True
            else:
                parent["child_flops"] = parent.get("child_flops", 0) + record.flops
        if self.memory and event.recorded and event.phase == "forward":
            record.saved_bytes = self._hold(event)
        self.records.append(record)

    # ------------------------------------------------------------------------------------ saved memory
    def _hold(self, event: OpEvent) -> int:
        """Account the arrays a new node keeps for backward; returns their total size."""
        node = event.function
        ids, total = [], 0
        for array in events.iter_saved_arrays(node, event.inputs):
            entry = self._arrays.setdefault(id(array), [int(array.nbytes), 0])
            if entry[1] == 0:
                self._live += entry[0]
            entry[1] += 1
            ids.append(id(array))
            total += entry[0]
        key = id(node)
        self._holding[key] = (weakref.ref(node), ids)
        self._finalizers.append(weakref.finalize(node, self._drop, key))
        self.live_saved.append((event.end, self._live))
        return total

    def _drop(self, key: int) -> None:
        held = self._holding.pop(key, None)
        if held is None:
            return
        for array_id in held[1]:
            entry = self._arrays[array_id]
            entry[1] -= 1
            if entry[1] == 0:
                self._live -= entry[0]
                del self._arrays[array_id]
        self.live_saved.append((time.perf_counter_ns(), self._live))

    def _sweep_released(self) -> None:
        """Drop the nodes whose saved state the engine released after their backward step (it releases each
        node once its step is done, unless retain_graph)."""
        for key in self._stepped:
            held = self._holding.get(key)
            if held is not None and getattr(held[0](), "_released", True):
                self._drop(key)
        self._stepped.clear()

    # ---------------------------------------------------------------------------------------- reports
    def _top(self) -> list[OpRecord]:
        return [r for r in self.records if not r.nested]

    def total_flops(self) -> int:
        """FLOPs of everything profiled, forward plus backward (ops without a formula add nothing: see
        :meth:`not_counted`)."""
        return sum(r.flops for r in self._top() if r.flops is not None)

    def not_counted(self) -> list[str]:
        """The ops (and phases) whose FLOPs are unknown."""
        return sorted({f"{r.op} ({r.phase})" for r in self._top() if r.flops is None})

    def table(self, sort_by: str = "total") -> Table:
        """Per op and phase: calls, total and self time, average, share of the total, FLOPs, GFLOP/s, bytes
        moved and bytes saved for backward. ``sort_by``: "total", "self", "flops" or "calls"."""
        groups: dict[tuple[str, str], list[OpRecord]] = defaultdict(list)
        for record in self._top():
            groups[(record.op, record.phase)].append(record)
        grand = sum(r.seconds for r in self._top()) or 1.0
        rows = []
        for (op, phase), records in groups.items():
            total = sum(r.seconds for r in records)
            flops = None if any(r.flops is None for r in records) else sum(r.flops for r in records)
            rows.append({
                "op": op, "phase": phase, "calls": len(records), "_total": total,
                "_self": sum(r.self_seconds for r in records), "_flops": -1 if flops is None else flops,
                "total ms": f"{total * 1e3:.3f}", "self ms": f"{sum(r.self_seconds for r in records) * 1e3:.3f}",
                "avg ms": f"{total * 1e3 / len(records):.3f}", "share": f"{100 * total / grand:.1f}%",
                "FLOPs": format_count(flops) if self.flops else "-",
                "GFLOP/s": "not counted" if flops is None else f"{flops / total * 1e-9:.2f}" if total else "-",
                "moved": format_bytes(sum(r.bytes_moved for r in records)) if self.flops else "-",
                "saved": format_bytes(sum(r.saved_bytes for r in records)) if self.memory else "-",
            })
        key = {"total": "_total", "self": "_self", "flops": "_flops", "calls": "calls"}[sort_by]
        rows.sort(key=lambda row: row[key], reverse=True)
        notes = [f"total {grand * 1e3:.3f} ms, {format_count(self.total_flops())}FLOP forward + backward"]
        if self.not_counted():
            notes.append("not counted (no FLOP formula): " + ", ".join(self.not_counted()))
        return Table(["op", "phase", "calls", "total ms", "self ms", "avg ms", "share", "FLOPs", "GFLOP/s",
                      "moved", "saved"], rows, notes)

    def by_module(self) -> Table:
        """Forward and backward time per module (a module's time includes its submodules'), with FLOPs. Backward
        time is mapped to the module whose op the step differentiates."""
        forward: dict[str, float] = defaultdict(float)
        backward: dict[str, float] = defaultdict(float)
        flops: dict[str, int | None] = {}
        for record in self._top():
            for path in _enclosing(record.module_path):
                (forward if record.phase == "forward" else backward)[path] += record.seconds
                known = flops.get(path, 0)
                flops[path] = None if known is None or record.flops is None else known + record.flops
        rows = [{"module": path or "(model)", "forward ms": f"{forward[path] * 1e3:.3f}",
                 "backward ms": f"{backward[path] * 1e3:.3f}", "FLOPs": format_count(flops[path])}
                for path in flops]  # in the order the modules first ran
        return Table(["module", "forward ms", "backward ms", "FLOPs"], rows)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write a Chrome trace-event JSON file (Perfetto, chrome://tracing): forward ops and backward steps on
        two tracks (nested ops inside their step), and a counter of the bytes saved for backward still alive."""
        origin = min((r.start_ns for r in self.records), default=0)
        trace: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "tinydl"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "forward"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "backward"}},
        ]
        for record in self.records:
            trace.append({
                "name": record.op, "cat": record.phase, "ph": "X", "pid": 1,
                "tid": 1 if record.phase == "forward" else 2,
                "ts": (record.start_ns - origin) / 1e3, "dur": (record.end_ns - record.start_ns) / 1e3,
                "args": {"op_id": record.op_id, "module": record.module_path, "inputs": str(record.input_shapes),
                         "outputs": str(record.output_shapes), "flops": record.flops,
                         "bytes_moved": record.bytes_moved, "saved_bytes": record.saved_bytes}})
        for time_ns, live in self.live_saved:
            trace.append({"name": "saved for backward", "ph": "C", "pid": 1, "ts": (time_ns - origin) / 1e3,
                          "args": {"bytes": live}})
        text = json.dumps({"traceEvents": trace, "displayTimeUnit": "ms"})
        try:
            with open(path, "w") as handle:
                handle.write(text)
        except OSError as error:
            raise OSError(error.errno, f"export_chrome_trace: cannot write the trace to {os.fspath(path)!r}: "
                                       f"{error.strerror}") from error


def _enclosing(path: str | None) -> list[str]:
    """"a.b.c" -> ["", "a", "a.b", "a.b.c"]: the module and every module around it (None: outside modules)."""
    if path is None:
        return []
    parts = path.split(".") if path else []
    return [""] + [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _is_cupy(arrays: Any) -> bool:
    return any(a is not None and type(a).__module__.startswith("cupy") for a in arrays)
