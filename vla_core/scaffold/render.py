"""Render the templates of one kind into a new plugin directory, atomically."""

from __future__ import annotations

import string
from importlib.resources import files
from pathlib import Path

from vla_core.atomic import atomic_directory
from vla_core.scaffold.kinds import KIND_TEMPLATES, KindTemplate
from vla_core.scaffold.names import PluginNameError, PluginNames, plugin_names

#: Generated path -> template, relative to templates/ ("KIND" is the kind's folder).
_LAYOUT: dict[str, str] = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "$module/__init__.py": "__init__.py.tmpl",
    "$module/$component_module.py": "KIND/component.py.tmpl",
    "tests/test_$module.py": "KIND/test.py.tmpl",
}


def _template(relative: str, kind: KindTemplate) -> string.Template:
    path = files("vla_core.scaffold").joinpath("templates", *relative.replace("KIND", kind.kind).split("/"))
    return string.Template(path.read_text(encoding="utf-8"))


def _values(names: PluginNames, kind: KindTemplate) -> dict[str, str]:
    usage = _template("KIND/usage.md.tmpl", kind)
    values = {
        "dist": names.dist,
        "module": names.module,
        "cls": names.class_name,
        "kind": kind.kind,
        "registry_kind": kind.registry_kind,
        "group": f"vla.{kind.registry_kind}",
        "component_module": kind.component_module,
        "summary": kind.summary,
        "dependencies": ", ".join(f'"{d}"' for d in kind.dependencies),
    }
    # The README's usage section is itself a template of the same values.
    values["usage"] = usage.substitute(values).strip()
    return values


def render(names: PluginNames, kind: KindTemplate) -> dict[str, str]:
    """The files of the new package: relative path -> text."""
    values = _values(names, kind)
    return {
        string.Template(target).substitute(values): _template(source, kind).substitute(values)
        for target, source in _LAYOUT.items()
    }


def new_plugin(name: str, kind: str, directory: str | Path = ".") -> Path:
    """Write the plugin package `directory/name/` for a component of `kind` -> its path.

    Raises PluginNameError (exit code 2) for an unknown kind, a name that cannot be a
    package's, or a target that already exists; nothing is written then.
    """
    if kind not in KIND_TEMPLATES:
        raise PluginNameError(f"--kind '{kind}' is not a component kind; use one of {', '.join(KIND_TEMPLATES)}.")
    names = plugin_names(name)
    target = Path(directory) / names.directory
    if target.exists() or target.is_symlink():
        raise PluginNameError(
            f"'{target}' already exists; `vla plugin new` never overwrites. Choose another name or --dir, or move "
            "the existing directory away."
        )
    rendered = render(names, KIND_TEMPLATES[kind])
    with atomic_directory(target) as tmp:
        for relative, text in rendered.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return target
