"""`vla list-components` and `vla info NAME`.

Both print for people on a terminal (rich tables whose names never wrap) and for
programs when stdout is not a terminal or with `--plain` (one line per row, aligned
columns, no markup). The listing itself lives in `vla_core.cli.listing`, which does not
import typer, so `vla list-components` can start without it.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from vla_core.cli.plain import plain_table, use_plain

_NO_KIND = typer.Option(None, "--kind", "-k", help="Only this kind, e.g. heads, vlas, vlm_backbones.")
_PLAIN = typer.Option(False, "--plain", help="One line per row, no colours (the default when piped).")


def list_components_cmd(
    kind: str | None = _NO_KIND,
    filter: str | None = typer.Option(None, "--filter", "-f", help="Glob on the name, e.g. 'Flow*'."),
    check: bool = typer.Option(False, "--check", help="Import each component: status ok or broken (with why)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of rows."),
    plain: bool = _PLAIN,
) -> None:
    """List installed components, read from package metadata: nothing is imported unless --check,
    so the status of an entry is "not imported" until then."""
    from vla_core.cli.listing import show_components

    show_components(kind=kind, filter=filter, check=check, as_json=as_json, plain=plain)


def info_cmd(
    name: str = typer.Argument(..., help="Component name, or package:Name."),
    kind: str | None = _NO_KIND,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the name must match one component)."),
    plain: bool = _PLAIN,
) -> None:
    """Show a component's parameters (type, default, description), package and capabilities."""
    from vla_core.cli.component_info import describe_component, describe_one

    if as_json:
        print(json.dumps(describe_one(name, kind), indent=2, default=str))
        return
    infos = describe_component(name, kind)
    if use_plain(plain):
        print("\n\n".join(_plain_info(info) for info in infos))
    else:
        _print_rich_info(infos)


def _header_lines(info: dict[str, Any]) -> list[str]:
    lines = [f"{info['name']}  ({info['kind']}, package {info['package']} {info['version']})", f"  {info['target']}"]
    if info["summary"]:
        lines.append(f"  {info['summary']}")
    if info["capabilities"]:
        lines.append("  capabilities: " + ", ".join(f"{k}={v}" for k, v in info["capabilities"].items()))
    return lines


_PARAM_COLUMNS = ("parameter", "type", "default", "description")
_PARAM_KEYS = ("name", "type", "default", "description")


def _plain_info(info: dict[str, Any]) -> str:
    rows = [[p[k] for k in _PARAM_KEYS] for p in info["parameters"]]
    return "\n".join([*_header_lines(info), plain_table(_PARAM_COLUMNS, rows)])


def _print_rich_info(infos: list[dict[str, Any]], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    for info in infos:
        # Text, not markup: `dict[str, list[float]]` and `[offsets in seconds]` keep their brackets.
        header = _header_lines(info)
        console.print(Text(header[0], style="bold"))
        for line in header[1:]:
            console.print(Text(line))
        table = Table()
        for column in _PARAM_COLUMNS[:-1]:
            table.add_column(column, no_wrap=column == "parameter", overflow="fold")
        table.add_column(_PARAM_COLUMNS[-1], overflow="fold")
        for p in info["parameters"]:
            table.add_row(*(Text(p[k]) for k in _PARAM_KEYS))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("list-components")(list_components_cmd)
    app.command("info")(info_cmd)
