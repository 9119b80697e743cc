"""`vla config validate FILE` and `vla config schema`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

config_app = typer.Typer(help="Validate configs and print their JSON Schema.", no_args_is_help=True)


@config_app.command("validate")
def validate_cmd(
    path: Path = typer.Argument(..., help="Run config file (.yaml, .toml, .json or .py)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a value: key.path=value (repeatable)."),
    show: bool = typer.Option(False, "--show", help="Print the resolved config (defaults filled in)."),
) -> None:
    """Check a run config against the installed components and the widths they must share;
    print what is wrong, with its path. Settings that are valid but probably not meant
    (a warm-up the run never leaves) are printed as warnings on stderr."""
    from vla_core.config.loading import load_config
    from vla_core.config.run import config_warnings

    config = load_config(path, overrides)
    for warning in config_warnings(config):
        typer.echo(f"warning: {warning}", err=True)
    if show:
        typer.echo(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        typer.echo(f"{path}: valid ({config.model['type']})")


@config_app.command("schema")
def schema_cmd(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of run configs over the installed components (for editors)."""
    from vla_core.config.schema import run_config_schema

    text = json.dumps(run_config_schema(), indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")
        typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
