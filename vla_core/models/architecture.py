"""Checkpoints that stand alone: every component's architecture recorded in its saved spec.

A component may read part of its architecture from a directory when it is built (a
transformers model directory's config.json, a processor's image size). Such a component
declares those constructor parameters in `architecture_paths` and returns, from
`resolved_parameters()`, the constructor arguments that rebuild exactly what it built with
every one of them set to None (`vla_core.protocols.ResolvesArchitecture`). Then:

- saving (`standalone_spec`): `config.json`'s `model` holds each part's resolved spec, so a
  checkpoint rebuilds without the directories it was initialised from;
- loading (`buildable_spec`): `pretrained_name_or_path` that only named weights is cleared
  (the checkpoint holds every weight). An architecture path still set means the checkpoint
  does not record that architecture (written before this, or by a component without the
  hook): the directory is used when it exists, otherwise a CheckpointError names the
  component, the path and the fix. Nothing falls back to a default architecture.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vla_core.errors import CheckpointError

#: Keys of a transformers config dict that describe where it came from or the runtime, not the architecture.
PROVENANCE_KEYS = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype",
                   "_attn_implementation_autoset", "auto_map")


def transformers_config_dict(config: Any) -> dict[str, Any]:
    """The architecture of a transformers `PretrainedConfig` as a JSON-able dict (its
    `to_dict()` without provenance keys), to record in a resolved spec; `Config.from_dict`
    or `AutoConfig.for_model(model_type, **it)` rebuilds it."""
    values = config.to_dict()
    for key in PROVENANCE_KEYS:
        values.pop(key, None)
    for key, value in values.items():  # nested configs (text_config, vision_config) too
        if isinstance(value, dict):
            values[key] = {k: v for k, v in value.items() if k not in PROVENANCE_KEYS}
    return json.loads(json.dumps(values, default=str))


def architecture_paths(cls: Any) -> tuple[str, ...]:
    """The constructor parameters of component class `cls` that name a directory its
    architecture is read from (`architecture_paths`; none when it does not declare them)."""
    return tuple(getattr(cls, "architecture_paths", ()) or ())


def _is_component(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("type"), str)


def standalone_spec(module: Any) -> dict[str, Any]:
    """The spec that rebuilds `module` alone: its `component_spec` with every part replaced
    by that part's own resolved spec (recursively). Parts are found by the spec key: among
    the ones `BaseVLA.build_child` recorded (kept even when the VLA later drops the
    attribute), else the attribute of that name."""
    spec = dict(module.component_spec)
    built = getattr(module, "_built_parts", None) or {}
    for key, value in spec.items():
        if not _is_component(value):
            continue
        part = built.get(key, getattr(module, key, None))
        if isinstance(getattr(part, "component_spec", None), Mapping):
            spec[key] = standalone_spec(part)
    return spec


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def standalone_variant(other: Mapping[str, Any], configured: Mapping[str, Any],
                       standalone: Mapping[str, Any]) -> dict[str, Any]:
    """`other` (e.g. a run's `inference_model`) with every part that is configured exactly as
    in `configured` (the trained model's spec as given) replaced by that part's resolved spec
    from `standalone`: the inference model shares those parts, and so their architecture."""
    result = dict(other)
    for key, value in other.items():
        if _is_component(value) and key in standalone and _canonical(value) == _canonical(configured.get(key)):
            result[key] = standalone[key]
    return result


def _named_path(value: Any) -> str | None:
    """The directory an architecture parameter names: the string itself, or in a mapping
    (FluxVLA's `pretrained_cfg`) the value of its `*path` key."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if str(key).endswith("path") and isinstance(inner, str) and inner:
                return inner
    return None


def _records_architecture(cls: Any, spec: Mapping[str, Any]) -> bool:
    """Whether a saved spec that still names its directory records the architecture anyway
    (the class's optional `records_architecture(spec)`; e.g. TransformersVLMBackbone
    checkpoints written before the directory parameter was cleared)."""
    check = getattr(cls, "records_architecture", None)
    return bool(check(spec)) if callable(check) else False


def buildable_spec(spec: Mapping[str, Any], kind: str = "vlas", where: str = "model",
                   checkpoint: str | Path = "the checkpoint") -> dict[str, Any]:
    """A saved spec made ready to build from a checkpoint (which holds every weight).

    For each component (recursively, following the parameters its class marks as nested
    components): `pretrained_name_or_path` naming weights only is cleared. A parameter in
    the class's `architecture_paths` that is still set means the architecture is not
    recorded: the directory is kept when it exists (the component reads its architecture
    there; its weights are then replaced by the checkpoint's), else CheckpointError.

    Args:
        spec: a component spec from `config.json` (`model` or `inference_model`).
        kind: its registry group.
        where: its dotted path in config.json, for messages.
        checkpoint: the checkpoint directory, for messages.
    """
    from vla_core import registry
    from vla_core.config.spec import component_parameters

    result = dict(spec)
    cls = registry.load(kind, str(spec["type"]))
    arch_paths = architecture_paths(cls)
    for name in arch_paths:
        path = _named_path(result.get(name))
        if path is None:
            continue
        if path.endswith(".safetensors") or _records_architecture(cls, result):
            result[name] = None  # a weights file names no architecture; or the spec holds it already
        elif Path(path).exists():
            warnings.warn(
                f"{checkpoint}: {where} ({spec['type']}) does not record its architecture, so it is read again "
                f"from {name} '{path}'. Re-save the checkpoint with `vla export` to make it stand alone.",
                UserWarning, stacklevel=3,
            )
        else:
            raise CheckpointError(
                f"{checkpoint}: {where} ({spec['type']}) takes its architecture from {where}.{name} '{path}', which "
                "no longer exists, and config.json does not record that architecture (the checkpoint was written "
                "before checkpoints recorded resolved architectures, or by a component without "
                "resolved_parameters()). Restore that directory (or a copy of the same model) at that path, load "
                "the checkpoint once and re-save it with `vla export CHECKPOINT NEW_DIR` (the new one stands "
                f"alone); or write the architecture into config.json's {where} and set {name} to null."
            )
    if "pretrained_name_or_path" in result and "pretrained_name_or_path" not in arch_paths:
        result["pretrained_name_or_path"] = None  # weights only: the checkpoint holds them
    kinds = {param.name: param.component_kind for param in component_parameters(cls)}
    for key, value in result.items():
        if not _is_component(value):
            continue
        if kinds.get(key) is not None:
            result[key] = buildable_spec(value, str(kinds[key]), f"{where}.{key}", checkpoint)
        else:  # a nested spec of no declared kind: its weights come from the checkpoint too
            result[key] = _without_weight_paths(value)
    return result


def _without_weight_paths(spec: Any) -> Any:
    if isinstance(spec, Mapping):
        return {k: None if k == "pretrained_name_or_path" else _without_weight_paths(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_without_weight_paths(v) for v in spec]
    return spec
