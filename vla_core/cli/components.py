"""`vla list-components` and `vla info NAME`."""

from __future__ import annotations

import json

import typer

_NO_KIND = typer.Option(None, "--kind", "-k", help="Only this kind, e.g. heads, vlas, vlm_backbones.")


def list_components_cmd(
    kind: str | None = _NO_KIND,
    filter: str | None = typer.Option(None, "--filter", "-f", help="Glob on the name, e.g. 'Flow*'."),
    check: bool = typer.Option(False, "--check", help="Import each component and report broken ones."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of rows."),
) -> None:
    """List installed components (from package metadata; nothing is imported unless --check)."""
    from vla_core.registry import list_components

    rows = [entry.as_row() for entry in list_components(kind=kind, filter=filter, check=check)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=None if rows else "no components found")
    for column in ("name", "kind", "package", "version", "status", "error"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "available": "", "broken": "red", "disabled": "dim", "duplicate": "yellow"}
    for row in rows:
        status = f"[{styles[row['status']]}]{row['status']}[/]" if styles.get(row["status"]) else row["status"]
        table.add_row(row["name"], row["kind"], row["package"], row["version"], status, row["error"] or "")
    Console().print(table)


def info_cmd(
    name: str = typer.Argument(..., help="Component name, or package:Name."),
    kind: str | None = _NO_KIND,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a component's parameters (type, default, description), package and capabilities."""
    from vla_core.cli.component_info import describe_component

    infos = describe_component(name, kind)
    if as_json:
        typer.echo(json.dumps(infos, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for info in infos:
        console.print(f"[bold]{info['name']}[/]  ({info['kind']}, package {info['package']} {info['version']})")
        console.print(f"  {info['target']}")
        if info["summary"]:
            console.print(f"  {info['summary']}")
        if info["capabilities"]:
            caps = ", ".join(f"{k}={v}" for k, v in info["capabilities"].items())
            console.print(f"  capabilities: {caps}")
        table = Table()
        for column in ("parameter", "type", "default", "description"):
            table.add_column(column, overflow="fold")
        for p in info["parameters"]:
            table.add_row(p["name"], p["type"], p["default"], p["description"])
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("list-components")(list_components_cmd)
    app.command("info")(info_cmd)
