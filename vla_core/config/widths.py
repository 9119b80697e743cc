"""Widths that must agree across a VLA's components, checked on the resolved specs.

A head whose `input_dim` is not the backbone's hidden size, or a state the head would
cut, fails otherwise only at the first forward pass (a raw `mat1 and mat2 shapes cannot
be multiplied`) or never (a silently dropped state dim). `check_widths` finds both
before anything is built and names the two config paths and the fix.

Each component spec declares widths under five roles:

    features_in   width of the features it reads (a head's input_dim, a projector's in_dim)
    features_out  width of the features it gives (a backbone's hidden size, a projector's out_dim)
    state         state dims it reads (a head's state_dim; a processor's max_state_dim)
    action        action dims it predicts (a head's action_dim; a processor's max_action_dim)
    chunk         actions per chunk (a head's chunk_size; a processor's chunk_size)

read from well-known parameter names (`KNOWN_NAMES`), from a transformers config for
backbones configured by `model_type` + `config` (or `pretrained_name_or_path`), or from
the component's own hook::

    @classmethod
    def declared_widths(cls, spec: dict) -> dict[str, tuple[int, str] | None]:
        return {"features_out": (spec["text_config"]["hidden_size"], "text_config.hidden_size")}

(role -> (width, the setting's path inside the spec); None removes a role). A VLA names
which widths meet with `width_links(spec)` (see `default_links`, the flow BaseVLA's
parts imply). A width that cannot be known without building the model is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_core import registry
from vla_core.config.validate import join_path
from vla_core.errors import ConfigError

ROLES = ("features_in", "features_out", "state", "action", "chunk")

#: Parameter names that declare a role, first match wins (for every kind).
KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "features_in": ("input_dim", "in_dim", "backbone_embedding_dim"),
    "features_out": ("out_dim",),
    "state": ("state_dim", "max_state_dim"),
    "action": ("action_dim", "max_action_dim"),
    "chunk": ("chunk_size", "traj_length", "action_horizon", "n_action_steps"),
}

#: Kinds whose `hidden_size` parameter (or transformers config) is the width they give.
BACKBONE_KINDS = ("vlm_backbones", "vision_backbones", "llm_backbones")

#: The parts of a VLA spec and their kinds ("" is the VLA itself).
PARTS: dict[str, str] = {
    "": "vlas",
    "vlm_backbone": "vlm_backbones",
    "vision_backbone": "vision_backbones",
    "llm_backbone": "llm_backbones",
    "projector": "projectors",
    "vla_head": "heads",
    "processor": "processors",
}


@dataclass(frozen=True)
class Width:
    """A width and the config setting that decides it."""

    value: int
    path: str  # full dotted path, e.g. model.llm_backbone.config.hidden_size
    source: str = ""  # where the value comes from when the path does not hold it


@dataclass(frozen=True)
class WidthLink:
    """Two widths that must be equal: `checked` is the one the fix changes."""

    checked: tuple[str, str]  # (part, role), part "" for the VLA itself
    reference: tuple[str, str]
    reason: str  # why they must agree, for the message


def check_run_widths(config: Any) -> None:
    """`check_widths` for a RunConfig's `model` and `inference_model`."""
    check_widths(config.model, "model", config.data)
    check_widths(config.inference_model, "inference_model", config.data)


def check_widths(model: Mapping[str, Any] | None, path: str, data: Mapping[str, Any] | None = None) -> None:
    """Raise ConfigError when widths of the resolved VLA spec `model` (at config `path`)
    disagree: linked feature widths, the processor against the part that reads states and
    predicts actions (the head, else the VLA), and the processor's chunk against `data`'s."""
    if model is None:
        return
    widths = {
        part: component_widths(kind, model.get(part) if part else model, join_path(path, part) if part else path)
        for part, kind in PARTS.items()
    }
    for link in vla_links(model):
        checked, reference = _lookup(widths, link.checked), _lookup(widths, link.reference)
        if checked is not None and reference is not None and checked.value != reference.value:
            raise ConfigError(
                f"is {checked.value}, but {_where(reference)} is {reference.value} ({link.reason}). "
                f"Set {checked.path} to {reference.value}, or change {reference.path}.",
                checked.path,
            )
    actor = widths["vla_head"] if model.get("vla_head") else widths[""]
    _check_processor(actor, widths["processor"])
    data_chunk = component_widths("datasets", data, "data").get("chunk") if data else None
    processor_chunk = widths["processor"].get("chunk")
    if data_chunk and processor_chunk and data_chunk.value != processor_chunk.value:
        raise ConfigError(
            f"is {processor_chunk.value}, but {data_chunk.path} is {data_chunk.value}: each sample's action chunk "
            f"has data.chunk_size actions and the processor expects exactly its own. Set both to the same value.",
            processor_chunk.path,
        )


def _check_processor(actor: dict[str, Width], processor: dict[str, Width]) -> None:
    for role, what in (("state", "state"), ("action", "action")):
        mine, given = actor.get(role), processor.get(role)
        if mine and given and mine.value < given.value:
            raise ConfigError(
                f"is {mine.value}, but {given.path} is {given.value}: the processor pads every {what} to "
                f"{given.value} dims and the model would read only the first {mine.value}, silently dropping the "
                f"rest. Set {mine.path} to {given.value}, or {given.path} to {mine.value} if the robot's {what} "
                f"has {mine.value} dims.",
                mine.path,
            )
    mine, given = actor.get("chunk"), processor.get("chunk")
    if mine and given and mine.value > given.value:
        raise ConfigError(
            f"is {mine.value}, but {given.path} is {given.value}: the model predicts {mine.value} actions per chunk "
            f"and the data gives targets for {given.value}. Set {mine.path} to {given.value}, or raise "
            f"{given.path} (and data.chunk_size) to {mine.value}.",
            mine.path,
        )


def _lookup(widths: dict[str, dict[str, Width]], key: tuple[str, str]) -> Width | None:
    part, role = key
    return widths.get(part, {}).get(role)


def _where(width: Width) -> str:
    return f"{width.path} ({width.source})" if width.source else width.path


def default_links(spec: Mapping[str, Any]) -> list[WidthLink]:
    """The feature flow BaseVLA's parts imply (LlavaVLA's): a VLM backbone, optionally
    projected, feeds the head; or the vision backbone feeds the projector, which feeds
    the LLM, which feeds the head."""
    if spec.get("vlm_backbone"):
        source = "projector" if spec.get("projector") else "vlm_backbone"
        links = [WidthLink(("vla_head", "features_in"), (source, "features_out"), "the head reads those features")]
        if source == "projector":
            links.insert(0, WidthLink(("projector", "features_in"), ("vlm_backbone", "features_out"),
                                      "the projector reads the backbone's features"))
        return links
    return [
        WidthLink(("projector", "features_in"), ("vision_backbone", "features_out"),
                  "the projector reads the vision features"),
        WidthLink(("projector", "features_out"), ("llm_backbone", "features_out"),
                  "the LLM reads the projected image tokens at its own width"),
        WidthLink(("vla_head", "features_in"), ("llm_backbone", "features_out"), "the head reads the LLM's features"),
    ]


def vla_links(spec: Mapping[str, Any]) -> list[WidthLink]:
    """The VLA's own `width_links(spec)` if its class has one, else `default_links`."""
    hook = getattr(_component_class("vlas", spec), "width_links", None)
    return list(hook(dict(spec))) if callable(hook) else default_links(spec)


def component_widths(kind: str, spec: Any, path: str) -> dict[str, Width]:
    """The widths a resolved spec declares: known parameter names, a backbone's
    transformers config, then the class's `declared_widths(spec)` hook on top."""
    if not isinstance(spec, Mapping):
        return {}
    widths: dict[str, Width] = {}
    for role, names in KNOWN_NAMES.items():
        for name in names:
            value = _positive_int(spec.get(name))
            if value is not None:
                widths[role] = Width(value, join_path(path, name))
                break
    if kind in BACKBONE_KINDS:
        hidden = _positive_int(spec.get("hidden_size"))
        out = Width(hidden, join_path(path, "hidden_size")) if hidden else transformers_width(spec, path)
        if out is not None:
            widths["features_out"] = out
    hook = getattr(_component_class(kind, spec), "declared_widths", None)
    if callable(hook):
        for role, declared in dict(hook(dict(spec))).items():
            if role not in ROLES:
                raise ValueError(f"declared_widths of {spec.get('type')} returned unknown role {role!r}; use {ROLES}.")
            if declared is None:
                widths.pop(role, None)
            elif _positive_int(declared[0]) is not None:
                widths[role] = Width(int(declared[0]), join_path(path, declared[1]))
    return widths


def _component_class(kind: str, spec: Mapping[str, Any]) -> Any:
    try:  # validation already imported it; a name it rejected has no widths to check
        return registry.load(kind, spec["type"])
    except Exception:
        return None


def _positive_int(value: Any) -> int | None:
    # 0 means "not used" for state_dim (MLPActionHead ignores the state): nothing to check.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def transformers_width(spec: Mapping[str, Any], path: str) -> Width | None:
    """The hidden size of a backbone configured like transformers' models (`model_type`
    + `config` overrides, or a local `pretrained_name_or_path` with a config.json): from
    the overrides, else the saved config.json, else transformers' defaults for the model
    type (`AutoConfig.for_model`: a config object, no weights). None when unknown."""
    if "model_type" not in spec or "config" not in spec:
        return None
    overrides = dict(spec.get("config") or {})
    feature_layer = spec.get("feature_layer", -1)
    found = _hidden_width(overrides, feature_layer)
    if found is not None:
        return Width(found[0], join_path(path, f"config.{found[1]}"))
    pretrained = spec.get("pretrained_name_or_path")
    if pretrained:
        config_file = Path(pretrained) / "config.json"
        try:
            saved = json.loads(config_file.read_text())
        except (OSError, ValueError):
            return None  # building reports a missing or unreadable checkpoint itself
        found = _hidden_width(saved, feature_layer)
        source = f"its {found[1]} in {config_file}" if found else ""
        return Width(found[0], join_path(path, "pretrained_name_or_path"), source) if found else None
    try:
        from transformers import AutoConfig

        defaults = AutoConfig.for_model(str(spec["model_type"]), **overrides).to_dict()
    except Exception:
        return None  # an unknown model type: building says so, with its own message
    found = _hidden_width(defaults, feature_layer)
    if found is None:
        return None
    source = f"transformers' default for {spec['model_type']}"
    return Width(found[0], join_path(path, f"config.{found[1]}"), source)


def _hidden_width(config: Mapping[str, Any], feature_layer: Any) -> tuple[int, str] | None:
    """(width, key) of the features a transformers model gives: `hidden_size`, or for
    convolutional nets the `hidden_sizes` entry of the stage `feature_layer` reads."""
    hidden = _positive_int(config.get("hidden_size"))
    if hidden is not None:
        return hidden, "hidden_size"
    sizes = config.get("hidden_sizes")
    if isinstance(sizes, list) and sizes and isinstance(feature_layer, int):
        try:
            value = _positive_int(sizes[feature_layer])
        except IndexError:
            return None
        return (value, "hidden_sizes") if value is not None else None
    return None
