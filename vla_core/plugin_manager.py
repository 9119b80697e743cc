"""The pluggy plugin manager: loads `vla.plugins` hook modules, each in isolation."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import pluggy

from vla_core import hooks
from vla_core.registry import _canonical, disabled_packages, strict_plugins

logger = logging.getLogger(__name__)

_manager: pluggy.PluginManager | None = None
#: Hook modules that failed to import: (entry name, package, reason).
broken_hook_plugins: list[tuple[str, str, str]] = []


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with vla's hookspecs and no plugins (tests register inline ones)."""
    manager = pluggy.PluginManager(hooks.PROJECT)
    manager.add_hookspecs(hooks)
    return manager


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, with every installed `vla.plugins` module loaded.

    A hook module that fails to import is skipped and recorded in
    `broken_hook_plugins` (VLA_STRICT_PLUGINS=1 re-raises instead).
    """
    global _manager
    if _manager is not None:
        return _manager
    manager = new_plugin_manager()
    disabled = disabled_packages()
    for ep in entry_points(group="vla.plugins"):
        package = ep.dist.metadata["Name"] if getattr(ep, "dist", None) is not None else "<unknown>"
        if _canonical(package) in disabled or manager.has_plugin(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:
            if strict_plugins():
                raise
            reason = f"{type(exc).__name__}: {exc}"
            broken_hook_plugins.append((ep.name, package, reason))
            logger.warning("Could not import vla.plugins entry '%s' from package '%s': %s", ep.name, package, reason)
            continue
        manager.register(module, name=ep.name)
    _manager = manager
    return manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests)."""
    global _manager
    _manager = None
    broken_hook_plugins.clear()
