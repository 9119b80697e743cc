"""Entry-point discovery of components: list without importing, load on demand.

Each kind of component has its own entry-point group (`vla.heads`, `vla.vlas`, ...). A
plugin's pyproject declares, e.g.::

    [project.entry-points."vla.heads"]
    FlowMatchingHead = "vla_heads_flow.flow_matching_head:FlowMatchingHead"

Listing reads package metadata only (no plugin code runs, torch is not imported). A
component is imported when a config names it; an import failure is isolated to that
entry and reported with the plugin's name. The same name in two distributions is an
error when used (never a silent overwrite); `dist:Name` picks one.

Environment:
    VLA_DISABLE_PLUGINS=a,b  skip these distributions entirely.
    VLA_STRICT_PLUGINS=1     re-raise the original import error instead of wrapping it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NamedTuple

from vla_core.errors import ComponentNotFoundError, DuplicateComponentError, PluginImportError

#: Component kinds; the entry-point group of kind K is `vla.K`.
KINDS: tuple[str, ...] = (
    "vlas",
    "vlm_backbones",
    "vision_backbones",
    "llm_backbones",
    "projectors",
    "heads",
    "processors",
    "datasets",
    "envs",
)

#: Where known, which distribution provides a component, for "pip install ..." hints.
KNOWN_PROVIDERS: dict[str, str] = {
    "FlowMatchingHead": "vla-heads-flow",
    "FlowMatchingInferenceHead": "vla-heads-flow",
    "DiffusionActionHead": "vla-heads-flow",
    "PaliGemma": "vla-paligemma",
    "GemmaLLMBackbone": "vla-paligemma",
    "PI0FlowMatching": "vla-paligemma",
    "PI05FlowMatching": "vla-paligemma",
    "OpenPIProcessor": "vla-paligemma",
    "EagleBackbone": "vla-eagle",
    "GR00TProcessor": "vla-eagle",
    "OpenVLA": "vla-openvla",
    "OpenVLAOFT": "vla-openvla",
    "OpenVLAProcessor": "vla-openvla",
    "PrismaticVisionBackbone": "vla-openvla",
    "PrismaticProjector": "vla-openvla",
    "DinoSigLIPViTBackbone": "vla-openvla",
    "LLaMa2LLMBackbone": "vla-openvla",
    "FusedMLPProjector": "vla-openvla",
    "OpenVLAHead": "vla-openvla",
    "L1RegressionActionHead": "vla-openvla",
    "MetaWorld": "vla-metaworld",
}

LOCAL_PACKAGE = "<local>"
#: The status of an entry found in metadata and not imported in this process yet.
NOT_IMPORTED = "not imported"


class ComponentEntry(NamedTuple):
    """One registered component, as the listing shows it (immutable; `_replace` makes a
    changed copy). A NamedTuple rather than a dataclass: `dataclasses` imports `inspect`
    and `ast`, a sixth of `vla list-components`' start-up.

    `status` says what this process knows: "not imported" (found in metadata; whether it
    imports is unknown until it is used or listed with `check=True`), "ok" (imported),
    "broken" (its import failed; `error` says why), "disabled" (its package is in
    VLA_DISABLE_PLUGINS) or "duplicate" (another package registers the same name).
    """

    name: str
    kind: str
    package: str
    version: str
    target: str
    status: str = NOT_IMPORTED
    error: str | None = None

    @property
    def group(self) -> str:
        return group_of(self.kind)

    @property
    def qualified_name(self) -> str:
        return f"{self.package}:{self.name}"

    def as_row(self) -> dict[str, Any]:
        """The listing row: exactly name, kind, package, version, status, error."""
        return {
            "name": self.name,
            "kind": self.kind,
            "package": self.package,
            "version": self.version,
            "status": self.status,
            "error": self.error,
        }


def group_of(kind: str) -> str:
    return f"vla.{kind}"


def _canonical(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def disabled_packages() -> set[str]:
    """Distributions named in VLA_DISABLE_PLUGINS (comma separated), canonicalised."""
    raw = os.environ.get("VLA_DISABLE_PLUGINS", "")
    return {_canonical(p.strip()) for p in raw.split(",") if p.strip()}


def strict_plugins() -> bool:
    return os.environ.get("VLA_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


# In-process registrations (tests, notebooks): kind -> name -> class or factory.
_local: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
# Import results, so each entry is imported (and fails) at most once per process.
_loaded: dict[tuple[str, str, str], Any] = {}
_load_errors: dict[tuple[str, str, str], str] = {}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        import difflib  # only for the suggestion; not on the listing's start-up path

        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ComponentNotFoundError(f"Unknown component kind '{kind}'.{hint} Kinds: {', '.join(KINDS)}.")


@cache
def _scan() -> dict[str, tuple[tuple[EntryPoint, str, str], ...]]:
    """Every `vla.<kind>` entry point, read in one pass over the installed distributions.

    One `entry_points()` call reads each distribution's entry_points.txt once; a call per
    group would read them all once per kind (nine times), which dominated the start-up
    of `vla list-components`.
    """
    every = entry_points()  # `.select` filters in memory (3.10 and 3.11 return SelectableGroups)
    result = {}
    for kind in KINDS:
        rows = [(ep, *_name_and_version(getattr(ep, "dist", None))) for ep in every.select(group=group_of(kind))]
        # Editable installs can expose the same distribution twice; keep one row each.
        unique = {(ep.name, _canonical(pkg)): (ep, pkg, ver) for ep, pkg, ver in rows}
        result[kind] = tuple(sorted(unique.values(), key=lambda row: (row[0].name.lower(), row[1])))
    return result


# Distribution path -> (name, version): reading METADATA parses an email message, so each
# distribution's is read once however many entries it registers.
_dist_names: dict[str, tuple[str, str]] = {}


def _name_and_version(dist: Any) -> tuple[str, str]:
    if dist is None:
        return "<unknown>", ""
    key = str(getattr(dist, "_path", id(dist)))
    if key not in _dist_names:
        metadata = dist.metadata  # parsed on every access (`dist.version` would parse it again)
        _dist_names[key] = (metadata["Name"], metadata["Version"])
    return _dist_names[key]


def _metadata_entries(kind: str) -> tuple[tuple[EntryPoint, str, str], ...]:
    return _scan()[kind]


def refresh() -> None:
    """Forget cached metadata and imports (after installing a plugin in this process)."""
    _scan.cache_clear()
    _dist_names.clear()
    _loaded.clear()
    _load_errors.clear()


def register(kind: str, name: str, target: Any) -> None:
    """Register a component in this process only (tests, notebooks). Undo with `unregister`."""
    _check_kind(kind)
    _local[kind][name] = target


def unregister(kind: str, name: str) -> None:
    _local[kind].pop(name, None)


def _entries_of_kind(kind: str) -> list[ComponentEntry]:
    disabled = disabled_packages()
    rows = []
    for ep, package, version in _metadata_entries(kind):
        status, error = _known_status(kind, package, ep.name, disabled)
        rows.append(ComponentEntry(ep.name, kind, package, version, ep.value, status, error))
    for name, target in _local[kind].items():
        target_name = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', target)}"
        rows.append(ComponentEntry(name, kind, LOCAL_PACKAGE, "", target_name, "ok"))
    # Mark names registered by more than one (enabled) distribution.
    active = [r for r in rows if r.status != "disabled"]
    by_name: dict[str, list[ComponentEntry]] = {}
    for row in active:
        by_name.setdefault(row.name, []).append(row)
    marked = []
    for row in rows:
        twins = [r.package for r in by_name.get(row.name, []) if r.package != row.package]
        if twins and row.status != "disabled":
            row = row._replace(status="duplicate", error=f"also registered by {', '.join(twins)}")
        marked.append(row)
    return marked


def _known_status(kind: str, package: str, name: str, disabled: set[str]) -> tuple[str, str | None]:
    """What this process knows about an entry: disabled, imported ("ok"), failed to
    import ("broken", with the reason) or not imported yet."""
    if _canonical(package) in disabled:
        return "disabled", "disabled by VLA_DISABLE_PLUGINS"
    key = (kind, package, name)
    if key in _loaded:
        return "ok", None
    if key in _load_errors:
        return "broken", _one_line(_load_errors[key])
    return NOT_IMPORTED, None


def list_components(
    kind: str | None = None, filter: str | None = None, check: bool = False
) -> list[ComponentEntry]:
    """Registered components, read from package metadata without importing them.

    Args:
        kind: one of KINDS, or None for all kinds.
        filter: a glob on the name, e.g. 'Flow*' (case-insensitive).
        check: import each component (isolated) and report "ok" or "broken" with the reason.
    """
    kinds = KINDS if kind is None else (kind,)
    rows: list[ComponentEntry] = []
    for k in kinds:
        _check_kind(k)
        rows.extend(_entries_of_kind(k))
    if filter:
        rows = [r for r in rows if fnmatch.fnmatch(r.name.lower(), filter.lower())]
    if check:
        rows = [_checked(r) for r in rows]
    return rows


def _checked(entry: ComponentEntry) -> ComponentEntry:
    if entry.status in {"disabled", "broken"} or entry.package == LOCAL_PACKAGE:
        return entry
    try:
        _import_entry(entry)
    except PluginImportError as exc:
        return entry._replace(status="broken", error=_one_line(str(exc)))
    return entry if entry.status == "duplicate" else entry._replace(status="ok")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def resolve(kind: str, name: str) -> ComponentEntry:
    """Find the entry a config's `type: name` refers to, without importing it.

    `name` may be `package:Name` to pick one of several distributions.
    """
    _check_kind(kind)
    package = None
    if ":" in name:
        package, name = name.split(":", 1)
    rows = [r for r in _entries_of_kind(kind) if r.name == name]
    if package is not None:
        rows = [r for r in rows if _canonical(r.package) == _canonical(package)]
    enabled = [r for r in rows if r.status != "disabled"]
    if len(enabled) == 1:
        return enabled[0]
    if len(enabled) > 1:
        choices = " or ".join(f"'{r.qualified_name}'" for r in enabled)
        raise DuplicateComponentError(
            f"The {kind} component '{name}' is registered by more than one package: "
            f"{', '.join(r.package for r in enabled)}. Name one explicitly in the config, "
            f"e.g. type: {choices}, or uninstall one of the packages."
        )
    if rows:  # only disabled ones
        raise ComponentNotFoundError(
            f"The {kind} component '{name}' comes from package '{rows[0].package}', which is "
            f"disabled by VLA_DISABLE_PLUGINS={os.environ.get('VLA_DISABLE_PLUGINS', '')}. "
            "Remove it from that variable to use it."
        )
    raise ComponentNotFoundError(_unknown_message(kind, name, package))


def _unknown_message(kind: str, name: str, package: str | None) -> str:
    installed = [r for r in _entries_of_kind(kind) if r.status != "disabled"]
    names = sorted({r.name for r in installed})
    wanted = f"{package}:{name}" if package else name
    parts = [f"Unknown {kind} component '{wanted}'."]
    import difflib  # only for the suggestion; not on the listing's start-up path

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        parts.append(f"Did you mean {' or '.join(repr(c) for c in close)}?")
    other_kinds = [k for k in KINDS if k != kind and any(r.name == name for r in _entries_of_kind(k))]
    if other_kinds:
        parts.append(f"'{name}' is registered as a {other_kinds[0]} component, not a {kind} component.")
    elif name in KNOWN_PROVIDERS:
        parts.append(f"It is provided by the package '{KNOWN_PROVIDERS[name]}': pip install {KNOWN_PROVIDERS[name]}.")
    listing = ", ".join(f"{r.name} ({r.package})" for r in sorted(installed, key=lambda r: r.name)) or "none"
    parts.append(f"Installed {kind}: {listing}.")
    return " ".join(parts)


def _import_entry(entry: ComponentEntry) -> Any:
    key = (entry.kind, entry.package, entry.name)
    if key in _loaded:
        return _loaded[key]
    if key in _load_errors and not strict_plugins():
        raise PluginImportError(_load_errors[key])
    ep = next(ep for ep, pkg, _ in _metadata_entries(entry.kind) if ep.name == entry.name and pkg == entry.package)
    try:
        obj = ep.load()
    except Exception as exc:
        if strict_plugins():
            raise
        reason = _explain_import_failure(exc, ep.module)
        message = (
            f"Could not import {entry.group} entry '{entry.name}' from package '{entry.package}': {reason} "
            "Run with --debug (or VLA_STRICT_PLUGINS=1) for the traceback, or disable the package "
            f"with VLA_DISABLE_PLUGINS={entry.package}."
        )
        _load_errors[key] = message
        raise PluginImportError(message) from exc
    _loaded[key] = obj
    return obj


def _explain_import_failure(exc: Exception, module_path: str) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name is not None:
        if module_path == exc.name or module_path.startswith(exc.name + "."):
            return (
                f"its module '{module_path}' does not exist; the package is installed incompletely "
                "or its entry point is wrong. Reinstall the package."
            )
        top = exc.name.split(".")[0]
        return f"it needs the module '{exc.name}', which is not installed (try: pip install {top})."
    if isinstance(exc, AttributeError):
        return f"its module has no such attribute ({exc})."
    return f"{type(exc).__name__}: {_one_line(str(exc))}."


def load(kind: str, name: str) -> Any:
    """Import and return the class (or factory) registered as `name` in `kind`."""
    entry = resolve(kind, name)
    if entry.package == LOCAL_PACKAGE:
        return _local[kind][entry.name]
    return _import_entry(entry)


def find_everywhere(name: str) -> list[ComponentEntry]:
    """Entries with this name in any kind (for `vla info NAME`)."""
    if ":" in name:
        package, bare = name.split(":", 1)
        return [
            r
            for k in KINDS
            for r in _entries_of_kind(k)
            if r.name == bare and _canonical(r.package) == _canonical(package)
        ]
    return [r for k in KINDS for r in _entries_of_kind(k) if r.name == name]


def load_entry(entry: ComponentEntry) -> Any:
    """Import the component a listing row describes."""
    if entry.package == LOCAL_PACKAGE:
        return _local[entry.kind][entry.name]
    return _import_entry(entry)
