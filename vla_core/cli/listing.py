"""What `vla list-components` prints, and its start-up path that does not import typer.

On a terminal: a rich table whose name, kind, package, version and status columns are
never wrapped (the error column folds). Piped or with `--plain`: one line per row like
`pip list`, so `vla list-components | grep FlowMatchingHead` finds the row.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from vla_core.cli.plain import plain_table, use_plain

#: Listing columns, in order; the last one (error) is never padded.
LIST_COLUMNS = ("name", "kind", "package", "version", "status", "error")
_STATUS_STYLES = {"ok": "green", "broken": "red", "disabled": "dim", "duplicate": "yellow"}

#: Options `list_components_fast` parses: option -> (keyword of show_components, takes a value).
#: The typer command `vla_core.cli.components.list_components_cmd` declares the same ones
#: (a test keeps them equal).
FAST_OPTIONS: dict[str, tuple[str, bool]] = {
    "--kind": ("kind", True),
    "-k": ("kind", True),
    "--filter": ("filter", True),
    "-f": ("filter", True),
    "--check": ("check", False),
    "--json": ("as_json", False),
    "--plain": ("plain", False),
}


def show_components(
    kind: str | None = None,
    filter: str | None = None,
    check: bool = False,
    as_json: bool = False,
    plain: bool = False,
) -> None:
    """Print the listing: JSON, plain lines, or a rich table on a terminal."""
    from vla_core.registry import list_components

    rows = [entry.as_row() for entry in list_components(kind=kind, filter=filter, check=check)]
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not use_plain(plain):
        print_rich_listing(rows)
    elif rows:
        print(plain_table(LIST_COLUMNS, [[row[c] for c in LIST_COLUMNS] for row in rows]))
    else:  # on stderr: a pipe reading the rows gets none
        print("no components found", file=sys.stderr)


def print_rich_listing(rows: list[dict[str, Any]], console: Any = None) -> None:
    """The listing on a terminal (`console`, default stdout): a table of name, kind,
    package, version and status whose cells are never wrapped or cut (names are what
    people copy into configs), then one paragraph per row with an error, which folds."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    if not rows:
        console.print("no components found")
        return
    columns = LIST_COLUMNS[:-1]
    widths = [max([len(c), *(len(str(row[c] or "")) for row in rows)]) for c in columns]
    # Two spaces between columns, one where that would not fit. Where even that is too wide
    # (the longest shipped names and packages need 87 columns), the version goes first: it
    # stays in --plain and --json. Narrower still, rich would drop whole columns: print the
    # plain lines instead, which the terminal soft-wraps without losing anything.
    needed = sum(widths) + len(columns) - 1
    if needed > console.width and "version" in columns:
        keep = [i for i, c in enumerate(columns) if c != "version"]
        columns, widths = tuple(columns[i] for i in keep), [widths[i] for i in keep]
        needed = sum(widths) + len(columns) - 1
    if needed > console.width:
        console.print(Text(plain_table(LIST_COLUMNS, [[row[c] for c in LIST_COLUMNS] for row in rows])), soft_wrap=True)
        return
    gap = 2 if needed + len(columns) - 1 <= console.width else 1
    # SIMPLE_HEAD draws a space between columns: padding adds the rest of the gap.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, gap - 1, 0, 0), show_edge=False)
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column, no_wrap=True, min_width=width)
    for row in rows:
        # Text cells, not markup: anything in [brackets] is printed as it is.
        cells = [Text(str(row[c] or "")) for c in columns[:-1]]
        table.add_row(*cells, Text(row["status"], style=_STATUS_STYLES.get(row["status"], "")))
    console.print(table)
    for row in rows:
        if row["error"]:
            console.print(Text(f"{row['name']} ({row['kind']}, {row['package']}): {row['error']}"))


def list_components_fast(args: list[str]) -> bool:
    """Run `vla list-components ARGS` without typer when every argument is one of
    FAST_OPTIONS; return False (having printed nothing) otherwise, e.g. for --help or a
    misspelt option, which typer then answers with its usual messages.

    Typer builds a pydantic adapter for every option of every command it parses, which
    alone takes longer than reading all entry points; listing is the command people and
    scripts run most, so it skips that.
    """
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        option, eq, inline = args[i].partition("=")
        if option not in FAST_OPTIONS:
            return False
        keyword, takes_value = FAST_OPTIONS[option]
        if not takes_value:
            if eq:
                return False
            values[keyword] = True
        elif eq:
            values[keyword] = inline
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            i += 1
            values[keyword] = args[i]
        else:
            return False
        i += 1
    show_components(**values)
    return True
