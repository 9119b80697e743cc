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


def error_message(exc: BaseException) -> tuple[str, int]:
    """The one place that turns an exception into what the user reads -> (paragraph, exit code).

    A `VLAError` already names the file or flag, what was wrong and what to do, and knows
    its exit code (2 bad input, 1 environment). An `OSError` that no layer explained
    (a file that vanished, a permission) names its file; anything else is a bug, said as
    such. Exit codes: 2 = fix the input, 1 = the machine or the code failed.
    """
    if isinstance(exc, VLAError):
        return _one_paragraph(str(exc)), exc.exit_code
    if isinstance(exc, OSError):
        where = f"'{exc.filename}'" if exc.filename else "a file or socket"
        reason = exc.strerror or str(exc) or type(exc).__name__
        code = 2 if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)) else 1
        return _one_paragraph(f"cannot use {where}: {reason}. Check the path, its permissions and the free space "
                              "there."), code
    detail = str(exc).strip() or "(no message)"
    return _one_paragraph(
        f"unexpected {type(exc).__name__} ({detail}). This is a bug in vla or in a plugin, not in your input; run "
        "again with --debug (or VLA_DEBUG=1) to see the traceback, and report it."
    ), 1


def _one_paragraph(message: str) -> str:
    """Strip any 'Error:' the message already starts with (the CLI adds exactly one) and
    blank lines (so it stays one paragraph); line breaks inside, e.g. a list of keys, stay."""
    message = message.strip()
    while message.lower().startswith("error:"):
        message = message[len("error:"):].strip()
    return "\n".join(line for line in message.splitlines() if line.strip())


def print_error(exc: BaseException) -> int:
    """Print an error as one `Error: ...` paragraph on stderr -> its exit code."""
    message, code = error_message(exc)
    typer.echo(f"Error: {message}", err=True)
    return code


def _quiet_rank() -> bool:
    """Under torchrun every rank meets the same user error (they run the same checks; a
    failure on rank 0 alone is relayed to the others), so only rank 0 prints it."""
    return os.environ.get("RANK", "0") != "0"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vla` console script: errors become one `Error:` paragraph and
    exit code 2 (bad input) or 1 (environment, bugs); `--debug` / `VLA_DEBUG=1` re-raise."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("VLA_DEBUG") == "1"
    try:
        _setup()
        app(args=args, prog_name="vla")
    except (SystemExit, typer.Exit):
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo("Error: interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, VLAError) and _quiet_rank():
            sys.exit(exc.exit_code)
        sys.exit(print_error(exc))
