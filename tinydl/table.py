"""A plain-text table: what the profiler, the model summary and the backward tracer print."""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["Table", "format_count", "format_bytes"]


def format_count(value: float | None, unit: str = "") -> str:
    """1234567 -> "1.23M"; None -> "not counted" (never 0)."""
    if value is None:
        return "not counted"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{prefix}{unit}"
    return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def format_bytes(value: int | None) -> str:
    if value is None:
        return "not counted"
    for scale, suffix in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {suffix}"
    return f"{value} B"


class Table:
    """Rows of named columns. ``str(table)`` aligns them (text left, numbers right); ``table.rows`` is a list of
    dicts for programs; ``notes`` are printed under the table."""

    def __init__(self, columns: Sequence[str], rows: Sequence[dict[str, Any]], notes: Sequence[str] = ()):
        self.columns, self.rows, self.notes = list(columns), list(rows), list(notes)

    def __str__(self) -> str:
        cells = [[str(row.get(column, "")) for column in self.columns] for row in self.rows]
        widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(self.columns)]
        numeric = [all(_is_number(line[i]) for line in cells) and bool(cells) for i in range(len(self.columns))]

        def render(values: Sequence[str]) -> str:
            return "  ".join(v.rjust(w) if right else v.ljust(w)
                             for v, w, right in zip(values, widths, numeric)).rstrip()

        lines = [render(self.columns), render(["-" * w for w in widths])] + [render(line) for line in cells]
        return "\n".join(lines + list(self.notes))

    __repr__ = __str__


def _is_number(text: str) -> bool:
    """A cell of a numeric column: starts with a digit (1.23M, 4,096, 12.5%, 3 KiB) or is a placeholder."""
    return text[:1].isdigit() or text in ("", "not counted", "-")
