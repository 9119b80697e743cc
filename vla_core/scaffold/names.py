"""The names a new plugin gets from the one the author types: distribution, package, class.

`vla plugin new my-head` makes the distribution `my-head`, the import package `my_head`
and the component class `MyHead`. A name that pip, Python or the registry would reject
(or that would shadow something already installed) is refused here, before any file is
written, with the reason.
"""

from __future__ import annotations

import keyword
import re
from importlib.metadata import PackageNotFoundError, distribution
from importlib.util import find_spec
from typing import NamedTuple

from vla_core.errors import VLAError

#: PEP 508 distribution names: letters, digits, and . _ - inside (not at either end).
_DIST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
#: Canonical names vla itself uses: the core distribution, its package and the CLI.
RESERVED = frozenset({"vla", "vla-core", "vla-plugin", "vla-plugins"})


class PluginNameError(VLAError):
    """The name given to `vla plugin new` cannot be a plugin's name (exit code 2)."""


class PluginNames(NamedTuple):
    """The names derived from what the author typed.

    Attributes:
        directory: the folder written, exactly as typed (`My-Head`).
        dist: the distribution name, canonical (`my-head`), as pip and `vla list-components` show it.
        module: the import package (`my_head`).
        class_name: the component class and its registered name (`MyHead`).
    """

    directory: str
    dist: str
    module: str
    class_name: str


def canonical(name: str) -> str:
    """PEP 503 normalisation: lower case, runs of `-_.` become one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_names(name: str) -> PluginNames:
    """Derive and check the names of a new plugin; raise PluginNameError with the reason."""
    if not _DIST_NAME.match(name):
        raise PluginNameError(
            f"'{name}' is not a valid package name: use letters, digits and '-', '_' or '.' between them, "
            "starting and ending with a letter or digit (e.g. my-head, vla-my-backbone)."
        )
    dist = canonical(name)
    if dist in RESERVED or dist.startswith("vla-core"):
        raise PluginNameError(f"'{name}' is reserved for vla itself; name your plugin e.g. vla-{dist}-plugin.")
    module = dist.replace("-", "_")
    if not module.isidentifier() or keyword.iskeyword(module):
        raise PluginNameError(
            f"'{name}' gives the Python package name '{module}', which Python cannot import (it must not start "
            "with a digit or be a keyword); start the name with a letter, e.g. my-{dist}."
        )
    # Words without the vla- prefix, so vla-my-head registers MyHead, not VlaMyHead.
    words = [w for w in dist.split("-") if w]
    if len(words) > 1 and words[0] == "vla":
        words = words[1:]
    class_name = "".join(w[:1].upper() + w[1:] for w in words)
    if not class_name.isidentifier():
        class_name = f"Component{class_name}"
    _check_not_taken(name, dist, module, class_name)
    return PluginNames(directory=name, dist=dist, module=module, class_name=class_name)


def _check_not_taken(name: str, dist: str, module: str, class_name: str) -> None:
    """Refuse names an installed distribution, module or component already has: the new
    package would shadow it, or configs naming the component would become ambiguous."""
    try:
        distribution(dist)
    except PackageNotFoundError:
        pass
    else:
        raise PluginNameError(
            f"'{name}': a distribution named '{dist}' is already installed here, and installing the new one would "
            "replace it; choose another name."
        )
    try:
        found = find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is not None:
        where = found.origin or "a namespace package"
        raise PluginNameError(
            f"'{name}': its Python package would be '{module}', but a module of that name already exists here "
            f"({where}) and one of the two would shadow the other; choose another name."
        )
    from vla_core import registry

    taken = registry.find_everywhere(class_name)
    if taken:
        entry = taken[0]
        raise PluginNameError(
            f"'{name}': its component would be registered as '{class_name}', but the {entry.kind} component of "
            f"that name is already provided by {entry.package}, so configs naming it would be ambiguous; choose "
            "another name."
        )
