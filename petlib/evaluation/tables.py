"""Tables as text: the one printer every report in petlib uses.

:func:`format_table` lays out rows either as aligned plain text (what the notebooks and
``python -m petlib.run`` print) or as a Markdown table (the benchmark's report, the README's
tables). Cells are formatted by :func:`format_cell`: floats with 4 decimals, ints with thousands
separators, ``None`` and NaN as ``-``; a caller that wants another format passes a string.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_cell", "format_table"]


def format_cell(value: Any) -> str:
    """``value`` as a table shows it: ``0.5000``, ``31,031,745``, ``-`` for None or NaN, else ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_table(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    columns: Sequence[str] | None = None,
    *,
    markdown: bool = False,
) -> str:
    """``rows`` as a table: a header line, a rule, one line per row.

    Args:
        rows: dicts (a missing key shows as ``-``) or sequences of cells in column order.
        columns: the header; default the keys of the first dict. Required for sequence rows.
        markdown: a Markdown table (``| a | b |``) instead of aligned text (first column
            left-aligned, the others right-aligned, two spaces apart).

    Raises:
        ValueError: sequence rows without ``columns``, or a row of another length.
    """
    if columns is None:
        if rows and not isinstance(rows[0], Mapping):
            raise ValueError("rows given as sequences need the column names (columns=...)")
        columns = list(rows[0].keys()) if rows else []
    columns = list(columns)
    cells = []
    for row in rows:
        values = [row.get(c) for c in columns] if isinstance(row, Mapping) else list(row)
        if len(values) != len(columns):
            raise ValueError(f"a row of {len(values)} cells for {len(columns)} columns: {values}")
        cells.append([format_cell(value) for value in values])
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(line) + " |" for line in cells]
        return "\n".join(lines)
    table = [columns, *cells]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
             for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
