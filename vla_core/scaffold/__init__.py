"""`vla plugin new`: write a complete, installable plugin package for one component kind.

The package holds a pyproject.toml whose entry point registers the component in its
group (`vla.<kind>s`), a light top-level package, a module with a small but real
implementation of the kind's contract, tests that run `vla_core.testing`'s checks on it,
and a README. Templates are package data under `templates/` (`string.Template`,
`$placeholders`); `kinds.py` says what each kind writes.
"""

from __future__ import annotations

from vla_core.scaffold.kinds import KIND_TEMPLATES, KindTemplate
from vla_core.scaffold.names import PluginNameError, PluginNames, plugin_names
from vla_core.scaffold.render import new_plugin

__all__ = ["KIND_TEMPLATES", "KindTemplate", "PluginNameError", "PluginNames", "new_plugin", "plugin_names"]
