"""Build components and VLAs from specs (dicts with a `type` key)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from vla_core import registry
from vla_core.config.validate import validate_spec
from vla_core.errors import VLAError


def build_component(kind: str, spec: Mapping[str, Any] | nn.Module, path: str | None = None) -> Any:
    """Validate `spec` against the component it names and construct it.

    An already-built module passes through unchanged, so Python users can hand in
    objects where a config would hold a spec. The resolved spec (defaults filled in) is
    kept on the object as `component_spec`. A component that reads its architecture from
    elsewhere (a model directory) returns those values from `resolved_parameters()`; they
    are merged into `component_spec`, so a saved spec rebuilds it without that directory.
    """
    if isinstance(spec, nn.Module):
        return spec
    resolved = validate_spec(kind, spec, path or kind)
    cls = registry.load(kind, resolved["type"])
    kwargs = {k: v for k, v in resolved.items() if k != "type"}
    component = cls(**kwargs)
    resolve = getattr(component, "resolved_parameters", None)
    if callable(resolve):  # what a directory contributed (architecture, layout), so the spec stands alone
        resolved = {**resolved, **resolve()}
    with contextlib.suppress(AttributeError):  # objects with __slots__ cannot carry it
        component.component_spec = resolved
    return component


def build_vla(spec: Mapping[str, Any]) -> Any:
    """Build a whole VLA from its spec (the `model` section of a run config)."""
    from vla_core.models.base_vla import BaseVLA

    vla = build_component("vlas", spec, "model")
    if isinstance(vla, BaseVLA) and not vla.post_init_done:
        raise VLAError(
            f"{type(vla).__name__} did not call self.post_init() at the end of its __init__; "
            "pretrained weights and freezing were not applied. Add the call (see docs/writing-a-plugin.md)."
        )
    return vla
