"""`vla plugin new NAME --kind KIND`: write a new plugin package (vla_core.scaffold)."""

from __future__ import annotations

from pathlib import Path

import typer

plugin_app = typer.Typer(help="Tools for plugin authors.", no_args_is_help=True)

_KINDS = "head, vlm_backbone, vision_backbone, llm_backbone, projector, vla, dataset or env"


@plugin_app.command("new")
def new_cmd(
    name: str = typer.Argument(..., metavar="NAME", help="The distribution name, e.g. my-head; also the folder "
                               "written."),
    kind: str = typer.Option(..., "--kind", help=f"The component kind: {_KINDS}."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write the NAME folder."),
) -> None:
    """Write NAME/, an installable plugin package with one working component of KIND: pyproject.toml with
    the entry point, a small real implementation, tests using vla_core.testing, and a README."""
    from vla_core.scaffold import KIND_TEMPLATES, new_plugin

    target = new_plugin(name, kind, directory)
    template = KIND_TEMPLATES[kind]
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    typer.echo(f"Wrote {target}/ ({template.summary}):")
    for file in files:
        typer.echo(f"  {file}")
    typer.echo(f"Next: pip install -e '{target}[test]' && pytest {target}; then "
               f"`vla list-components --kind {template.registry_kind}` lists it.")


def register(app: typer.Typer) -> None:
    app.add_typer(plugin_app, name="plugin")
