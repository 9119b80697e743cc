"""The `vla` command line.

Each command group is a module of this package that defines `register(app)`; the
modules import only typer at module level (heavy imports happen inside the command
functions), so `vla --help` and `vla list-components` start fast and never import torch.
Plugins add commands through the `vla_add_commands` hook.

Registration is lazy: a core command registers only its own module and skips the plugin
manager; `vla --help`, a bare `vla` and any other name register every module and every
plugin's commands. `vla list-components` does not even import typer when its arguments
are ones the listing parses itself (typer builds pydantic adapters for every option,
which alone takes longer than reading the entry points).
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

from vla_core.errors import VLAError

#: Command name -> the module of vla_core.cli that registers it, in help order.
COMMANDS: dict[str, str] = {
    "list-components": "components",
    "info": "components",
    "config": "config_cmd",
    "build": "build",
    "train": "train",
    "predict": "predict",
    "export": "export",
    "serve": "serve",
    "data": "data",
    "eval": "eval",
    "plugin": "plugin_cmd",
}

#: Modules of vla_core.cli that register commands, in help order.
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))

#: Options of the root command that take no value (so the command name follows them).
_ROOT_FLAGS = ("--debug", "--version", "--help")

_app: Any = None
_registered: set[str] = set()
_plugins_added = False


def _version_callback(value: bool) -> None:
    if value:
        import typer

        from vla_core import __version__

        typer.echo(f"vla {__version__}")
        raise typer.Exit()


def _make_app() -> Any:
    import typer

    app = typer.Typer(
        name="vla",
        help="Compose, train, evaluate and serve Vision-Language-Action robot policies.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True
        ),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    ) -> None:
        """Global options."""
        if debug:
            os.environ["VLA_DEBUG"] = "1"

    return app


def __getattr__(name: str) -> Any:
    # `vla_core.cli.app` is the typer app, created on first use so that importing this
    # package (the console script does) does not import typer.
    global _app
    if name == "app":
        if _app is None:
            _app = _make_app()
        return _app
    raise AttributeError(f"module 'vla_core.cli' has no attribute {name!r}")


def _register(module: str) -> None:
    if module not in _registered:
        _registered.add(module)
        import_module(f"vla_core.cli.{module}").register(__getattr__("app"))


def _setup(args: list[str] | None = None) -> None:
    """Register what `args` needs: the one module of a core command, else everything
    (every core module, then the plugins' commands through `vla_add_commands`)."""
    global _plugins_added
    command = _command_name(args or [])
    if command in COMMANDS:
        _register(COMMANDS[command])
        return
    for module in COMMAND_MODULES:
        _register(module)
    if not _plugins_added:
        _plugins_added = True
        from vla_core.plugin_manager import get_plugin_manager

        get_plugin_manager().hook.vla_add_commands(app=__getattr__("app"))


def _command_name(args: list[str]) -> str | None:
    """The first argument after the root flags, or None (help or an unknown option)."""
    for arg in args:
        if arg in _ROOT_FLAGS:
            if arg == "--help":
                return None
            continue
        return None if arg.startswith("-") else arg
    return None


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
    print(f"Error: {message}", file=sys.stderr)
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
        if _command_name(args) == "list-components":
            from vla_core.cli.listing import list_components_fast

            command_args = args[args.index("list-components") + 1 :]
            if list_components_fast(command_args):
                return
        _setup(args)
        __getattr__("app")(args=args, prog_name="vla")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        print("Error: interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        click = sys.modules.get("click")  # loaded with typer; a click Exit escaping the app is a plain exit
        if click is not None and isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if _in_torchrun():
            _record_failure(exc)
        if debug:
            raise
        if _quiet_rank() and (isinstance(exc, VLAError) or _in_torchrun()):
            # Rank 0 prints; another rank's own error reaches the launcher through the error file.
            sys.exit(error_message(exc)[1])
        sys.exit(print_error(exc))


def _in_torchrun() -> bool:
    return "TORCHELASTIC_ERROR_FILE" in os.environ


def _record_failure(exc: BaseException) -> None:
    """Under torchrun: leave this rank's error where the launcher reads it, so a failure on
    any rank (not only rank 0, which is the one that prints) is reported with its rank."""
    from vla_core.engine.rank_failures import record_exception

    record_exception(exc)
