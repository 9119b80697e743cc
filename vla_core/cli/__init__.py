"""The `vla` command line.

Each command group is a module of this package that defines `register(app)`; the
modules import only typer at module level (heavy imports happen inside the command
functions), so `vla --help` and `vla list-components` start fast and never import torch.
Plugins add commands through the `vla_add_commands` hook.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

import typer

from vla_core.errors import VLAError

#: Modules of vla_core.cli that register commands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "components",
    "config_cmd",
    "build",
    "train",
    "predict",
    "export",
    "serve",
    "data",
    "eval",
)

app = typer.Typer(
    name="vla",
    help="Compose, train, evaluate and serve Vision-Language-Action robot policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        from vla_core import __version__

        typer.echo(f"vla {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version_callback,
                                 is_eager=True),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Global options."""
    if debug:
        os.environ["VLA_DEBUG"] = "1"


_commands_added = False


def _setup() -> None:
    global _commands_added
    if _commands_added:
        return
    _commands_added = True
    for name in COMMAND_MODULES:
        import_module(f"vla_core.cli.{name}").register(app)
    from vla_core.plugin_manager import get_plugin_manager

    get_plugin_manager().hook.vla_add_commands(app=app)


def print_error(exc: BaseException) -> None:
    """A user error: one paragraph on stderr, no traceback (unless --debug)."""
    message = str(exc).strip()
    typer.echo(f"Error: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vla` console script; user errors exit with code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("VLA_DEBUG") == "1"
    try:
        _setup()
        app(args=args, prog_name="vla")
    except VLAError as exc:
        if debug:
            raise
        print_error(exc)
        sys.exit(2)
