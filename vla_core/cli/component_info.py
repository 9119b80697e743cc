"""What `vla info NAME` shows, as plain data (also used by docs generation)."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from vla_core import registry
from vla_core.errors import ComponentNotFoundError, DuplicateComponentError


def _capabilities(cls: Any) -> dict[str, Any]:
    return {
        name: getattr(cls, name)
        for name in sorted(dir(cls))
        if name.startswith("supports_") and isinstance(getattr(cls, name, None), bool)
    }


def describe_component(name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """One dict per matching registered component: name, kind, package, version, target,
    summary, capabilities and parameters (name, type, default, description)."""
    from vla_core.config.spec import component_parameters

    entries = registry.find_everywhere(name)
    if kind is not None:
        entries = [e for e in entries if e.kind == kind]
    if not entries:
        every = registry.list_components(kind)
        close = difflib.get_close_matches(name.split(":")[-1], sorted({e.name for e in every}), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        provider = registry.KNOWN_PROVIDERS.get(name)
        install = f" It is provided by the package '{provider}': pip install {provider}." if provider else ""
        raise ComponentNotFoundError(
            f"No component named '{name}' is installed.{hint}{install} Run `vla list-components` to see what is."
        )
    infos = []
    for entry in entries:
        cls = registry.load_entry(entry)
        doc = inspect.getdoc(cls) or ""
        params = []
        for p in component_parameters(cls):
            default = "required" if p.required else repr(p.default)
            params.append({"name": p.name, "type": p.type_name, "default": default, "description": p.doc})
        infos.append(
            {
                **entry.as_row(),
                "target": entry.target,
                "summary": doc.split("\n\n")[0].replace("\n", " "),
                "capabilities": _capabilities(cls),
                "parameters": params,
            }
        )
    return infos


def describe_one(name: str, kind: str | None = None) -> dict[str, Any]:
    """`describe_component` for exactly one component (what `vla info NAME --json` prints).

    A name registered in several kinds or by several packages is an error that lists them
    and says how to pick one, so a script always gets the same shape: one object.
    """
    infos = describe_component(name, kind)
    if len(infos) == 1:
        return infos[0]
    matches = ", ".join(f"{i['name']} ({i['kind']}, package {i['package']})" for i in infos)
    kinds = sorted({i["kind"] for i in infos})
    how = (
        f"add --kind {kinds[0]} (or another of {', '.join(kinds)})"
        if len(kinds) > 1
        else f"name the package, e.g. {infos[0]['package']}:{infos[0]['name']}"
    )
    raise DuplicateComponentError(f"'{name}' names {len(infos)} components: {matches}. To describe one, {how}.")
