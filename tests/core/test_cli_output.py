"""What the CLI prints for people (rich, on a terminal) and for programs (piped, --plain, --json)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from rich.console import Console

from vla_core.cli import print_error
from vla_core.cli.component_info import describe_component
from vla_core.cli.components import _print_rich_info
from vla_core.cli.listing import print_rich_listing
from vla_core.errors import VLAError

SHIPPED_NAMES = ("TransformersVisionBackbone", "MLPActionHead", "LlavaVLA", "VLAProcessor")


def test_piped_listing_is_one_line_per_row_for_grep(run_vla):
    result = run_vla("list-components")  # stdout is a pipe here
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "package", "version", "status", "error"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = {line.split()[0]: line for line in lines[2:]}
    for name in SHIPPED_NAMES:  # whole names, each on its own line, however long
        assert name in rows, result.stdout
    assert rows["MLPActionHead"].split()[:3] == ["MLPActionHead", "heads", "vla-core"]
    assert not re.search(r"[│┃━─\[\]]|\x1b", result.stdout)  # no box drawing, markup or colours
    # Columns line up: every row's kind starts where the header's does.
    start = lines[0].index("kind")
    assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines[2:])


def test_plain_flag_and_filter_in_process(vla_main):
    code, out, err = vla_main("list-components", "--plain", "--filter", "MLP*")
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert sorted(names) == ["MLPActionHead", "MLPProjector"]


def test_status_says_what_is_known(run_vla):
    listed = json.loads(run_vla("list-components", "--kind", "heads", "--json").stdout)
    assert {row["name"]: row["status"] for row in listed}["MLPActionHead"] == "not imported"
    checked = json.loads(run_vla("list-components", "--kind", "heads", "--json", "--check").stdout)
    assert {row["name"]: row["status"] for row in checked}["MLPActionHead"] == "ok"


def test_terminal_table_never_breaks_names():
    from vla_core.registry import list_components

    # What ships (the test plugins' longer names would not fit 80 columns as a table).
    test_plugins = ("vla-broken", "vla-example-head", "vla-example-backbone")
    rows = [e.as_row() for e in list_components() if e.package not in test_plugins]
    # Since vla-heads-roboflamingo (a 22-character package) next to TransformersVisionBackbone the
    # shipped table needs 87 columns with one space between columns: at 80 the version column goes.
    for width in (80, 120):
        console = Console(width=width, record=True, no_color=True)
        print_rich_listing(rows, console=console)
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "─" in text  # a table, not the plain fallback
        for name in SHIPPED_NAMES:
            assert re.search(rf"(^|\s){name}\s", text), (width, text)
        status = next(row["status"] for row in rows if row["name"] == "MLPActionHead")
        line = next(line for line in text.splitlines() if line.startswith("MLPActionHead "))
        assert line.rstrip().endswith(status) and "status" in text  # the last column, whole
        assert ("version" in text) == (width == 120)  # dropped first where the table would not fit
    # Too narrow for the table: plain lines (the terminal soft-wraps them), names whole.
    console = Console(width=40, record=True, no_color=True)
    print_rich_listing(rows, console=console)
    lines = console.export_text().splitlines()
    assert "─" not in lines[1] and any(line.startswith("TransformersVisionBackbone ") for line in lines)


def test_terminal_listing_prints_errors_whole_under_the_table():
    row = {"name": "Ghost", "kind": "heads", "package": "p", "version": "1", "status": "broken",
           "error": "needs [extra] installed"}
    console = Console(width=60, record=True, no_color=True)
    print_rich_listing([row], console=console)
    assert "Ghost (heads, p): needs [extra] installed" in console.export_text()


def test_info_shows_types_and_docs_verbatim(vla_main):
    code, out, err = vla_main("info", "LeRobotDataset", "--plain")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("delta_timestamps"))
    assert "dict[str, list[float]] | None" in line and "{key: [offsets in seconds]}" in line
    # The rich table (a terminal) keeps the brackets too.
    console = Console(width=200, record=True, no_color=True)
    _print_rich_info(describe_component("LeRobotDataset"), console=console)
    text = console.export_text()
    assert "dict[str, list[float]] | None" in text and "[offsets in seconds]" in text


def test_info_json_is_one_object_and_ambiguity_is_an_error(vla_main, register_component):
    code, out, _ = vla_main("info", "LlavaVLA", "--json")
    assert code == 0 and isinstance(json.loads(out), dict) and json.loads(out)["kind"] == "vlas"

    class Twin:
        """Registered under one name in two kinds."""

    register_component("heads", "TwinThing", Twin)
    register_component("projectors", "TwinThing", Twin)
    code, _, err = vla_main("info", "TwinThing", "--json")
    assert code == 2 and "names 2 components" in err and "--kind heads" in err, err
    code, out, err = vla_main("info", "TwinThing", "--json", "--kind", "projectors")
    assert code == 0, err
    assert json.loads(out)["kind"] == "projectors"


def test_error_is_said_once(capsys):
    print_error(VLAError("Error: boom. Fix it."))
    print_error(VLAError("boom. Fix it."))
    assert capsys.readouterr().err.splitlines() == ["Error: boom. Fix it.", "Error: boom. Fix it."]


def test_list_components_starts_without_typer_or_plugins():
    code = textwrap.dedent(
        """
        import sys
        from vla_core.cli import main
        main(["list-components", "--kind", "heads", "--plain"])
        heavy = [m for m in ("typer", "rich", "pydantic", "pluggy", "torch") if m in sys.modules]
        print("HEAVY=" + ",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MLPActionHead" in result.stdout
    assert result.stdout.strip().endswith("HEAVY="), result.stdout


def test_fast_listing_parses_exactly_the_options_typer_declares():
    import typer

    from vla_core.cli.components import register
    from vla_core.cli.listing import FAST_OPTIONS

    app = typer.Typer()
    register(app)
    command = typer.main.get_command(app).commands["list-components"]
    declared = {opt for param in command.params for opt in param.opts} - {"--help"}
    assert declared == set(FAST_OPTIONS)


@pytest.mark.parametrize("args", [["--kind=heads"], ["-k", "heads", "--json"], ["--filter", "MLP*", "--check"]])
def test_fast_and_typer_listing_agree(args, capsys):
    from vla_core.cli import _setup, app
    from vla_core.cli.listing import list_components_fast

    assert list_components_fast([*args, "--plain"])
    fast = capsys.readouterr().out
    _setup(["list-components"])
    with pytest.raises(SystemExit) as done:
        app(args=["list-components", *args, "--plain"], prog_name="vla")
    assert done.value.code == 0
    assert capsys.readouterr().out == fast


def test_help_lists_every_command_including_plugins(vla_main):
    from vla_core.cli import COMMANDS

    code, out, _ = vla_main("--help")
    assert code == 0
    listed = set(re.findall(r"^  ([a-z][a-z-]+)\s", out, flags=re.MULTILINE))
    assert set(COMMANDS) <= listed, out
    assert "example-head" in listed  # added by a plugin through the vla_add_commands hook


def test_unknown_fast_option_falls_back_to_typer(vla_main):
    code, _, err = vla_main("list-components", "--kindd", "heads")
    assert code == 2 and "No such option" in err


def test_commands_table_matches_what_the_modules_register():
    """A core command runs with only its module registered (COMMANDS): the table must say
    which module registers each command, and every command module must be in it."""
    import pkgutil
    from importlib import import_module

    import typer

    import vla_core.cli
    from vla_core.cli import COMMANDS

    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(vla_core.cli.__path__):
        if info.name.startswith("_"):  # __main__ runs the CLI on import
            continue
        module = import_module(f"vla_core.cli.{info.name}")
        if not callable(getattr(module, "register", None)):
            continue
        app = typer.Typer()
        module.register(app)
        names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
        found.update({name: info.name for name in names})
    assert found == COMMANDS
