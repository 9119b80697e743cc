"""Output for programs: aligned columns, one line per row, no markup (like `pip list`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def use_plain(requested: bool) -> bool:
    """Plain output when asked for, or when stdout is not a terminal (a pipe, a file):
    a rich table would wrap names at 80 columns there and `grep` would miss them."""
    return requested or not sys.stdout.isatty()


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A header, a dashed rule and one line per row; every column but the last is padded
    to its widest cell, values are never wrapped, and line breaks inside a value become
    spaces so a row stays one line."""
    cells = [[_one_line(value) for value in row] for row in rows]
    header = list(columns)
    widths = [max([len(header[i]), *(len(row[i]) for row in cells)]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(value.ljust(widths[i]) if i < len(header) - 1 else value for i, value in enumerate(line)).rstrip()
        for line in lines
    )


def _one_line(value: object) -> str:
    return " ".join(str("" if value is None else value).split())
