"""Find and build an env plugin (group `vla.envs`) by name, case-insensitively."""

from __future__ import annotations

from typing import Any

from vla_core import registry
from vla_core.errors import ComponentNotFoundError


def resolve_env_name(name: str) -> str:
    """'metaworld' -> 'MetaWorld' (the registered name); unknown names raise with the list."""
    if ":" in name:
        return name
    names = [entry.name for entry in registry.list_components("envs") if entry.status != "disabled"]
    matches = [n for n in names if n.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = {k.lower(): k for k in registry.KNOWN_PROVIDERS}
        if name.lower() in known:
            name = known[name.lower()]
    return name  # registry.resolve reports the unknown or duplicate name with suggestions


def make_env(name: str, **kwargs: Any) -> Any:
    """Build the env registered as `name` (e.g. 'metaworld') with its keyword arguments."""
    cls = registry.load("envs", resolve_env_name(name))
    if not callable(cls):
        raise ComponentNotFoundError(f"the vla.envs entry '{name}' is not a class or factory.")
    return cls(**kwargs)
