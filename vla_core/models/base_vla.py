"""BaseVLA: builds its parts from specs, loads pretrained weights, freezes, saves.

A VLA subclass declares its parts as constructor arguments annotated with spec aliases
(`HeadSpec`, `ProjectorSpec`, ...), builds extra ones with `self.build_child`, forwards
the common arguments with `**kwargs` to `BaseVLA.__init__`, and ends its `__init__` with
`self.post_init()`::

    class MyVLA(BaseVLA):
        def __init__(self, state_proj: ProjectorSpec, **kwargs):
            super().__init__(**kwargs)
            self.state_proj = self.build_child("projectors", state_proj, "state_proj")
            self.post_init()
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla_core.checksums import checkpoint_directory
from vla_core.config.spec import (
    HeadSpec,
    LLMBackboneSpec,
    ProcessorSpec,
    ProjectorSpec,
    VisionBackboneSpec,
    VLMBackboneSpec,
)
from vla_core.errors import CheckpointError, VLAError
from vla_core.models.architecture import standalone_spec, standalone_variant
from vla_core.models.build import build_component
from vla_core.models.weights import LoadReport, load_into, load_state_dict, save_state_dict

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1


class BaseVLA(nn.Module):
    """Base class of VLAs composed from registered components."""

    #: Capabilities the engine and `vla info` read.
    supports_compile: bool = False
    supports_kv_cache: bool = False
    #: Reads batches with observation history (images (B, T_obs, N_cam, C, H, W), `obs_masks`).
    supports_history: bool = False
    #: Samples with real-time-chunking guidance: `predict_action(..., rtc=RTCGuidance)`
    #: (vla_core.models.rtc_guidance); a VLA with a head reads the head's flag.
    supports_rtc: bool = False

    def __init__(
        self,
        vlm_backbone: VLMBackboneSpec | None = None,
        vision_backbone: VisionBackboneSpec | None = None,
        llm_backbone: LLMBackboneSpec | None = None,
        projector: ProjectorSpec | None = None,
        vla_head: HeadSpec | None = None,
        processor: ProcessorSpec | None = None,
        freeze_vlm_backbone: bool = False,
        freeze_vision_backbone: bool = False,
        freeze_llm_backbone: bool = False,
        freeze_projector: bool = False,
        pretrained_name_or_path: str | None = None,
        name_mapping: dict[str, str] | None = None,
        strict_loading: bool = True,
    ) -> None:
        """
        Args:
            vlm_backbone: a vision-language backbone spec (group vla.vlm_backbones).
            vision_backbone: an image encoder spec, used with llm_backbone and projector.
            llm_backbone: a language-model spec that reads projected image tokens and text.
            projector: maps backbone features to the width the next part expects.
            vla_head: the action head spec (group vla.heads).
            processor: how raw observations become this VLA's inputs (group vla.processors); built by the
                data pipeline, not here.
            freeze_vlm_backbone: keep the VLM backbone's weights fixed during training.
            freeze_vision_backbone: keep the vision encoder's weights fixed.
            freeze_llm_backbone: keep the language model's weights fixed.
            freeze_projector: keep the projector's weights fixed.
            pretrained_name_or_path: a local directory (or .safetensors file) to load weights from after building.
            name_mapping: {our_prefix: checkpoint_prefix} to load foreign checkpoints, e.g. {"vla_head": "action_head"}.
            strict_loading: fail when the pretrained weights have missing, unexpected or mis-shaped keys.
        """
        super().__init__()
        self.vlm_backbone = self.build_child("vlm_backbones", vlm_backbone, "vlm_backbone")
        self.vision_backbone = self.build_child("vision_backbones", vision_backbone, "vision_backbone")
        self.llm_backbone = self.build_child("llm_backbones", llm_backbone, "llm_backbone")
        self.projector = self.build_child("projectors", projector, "projector")
        self.vla_head = self.build_child("heads", vla_head, "vla_head")
        self.processor_spec = processor
        self._freeze = {
            "vlm_backbone": freeze_vlm_backbone,
            "vision_backbone": freeze_vision_backbone,
            "llm_backbone": freeze_llm_backbone,
            "projector": freeze_projector,
        }
        self._pretrained = (pretrained_name_or_path, dict(name_mapping or {}), strict_loading)
        self.load_report: LoadReport | None = None
        self.post_init_done = False

    def build_child(self, kind: str, spec: dict[str, Any] | nn.Module | None, name: str) -> Any:
        """Build an optional part from its spec (None stays None). The part is remembered under
        `name` (the spec key), so the saved spec records its resolved architecture even if the
        VLA keeps only a piece of it."""
        if spec is None:
            return None
        part = build_component(kind, spec, name)
        self.__dict__.setdefault("_built_parts", {})[name] = part
        return part

    def post_init(self) -> None:
        """Load `pretrained_name_or_path` (through `name_mapping`) and apply the freeze
        flags. Subclasses call this once, at the end of their `__init__`."""
        path, mapping, strict = self._pretrained
        if path:
            state = load_state_dict(path)
            self.load_report = load_into(self, state, mapping or None, strict=strict, source=str(path))
        for name, frozen in self._freeze.items():
            part = getattr(self, name, None)
            if frozen:
                if part is None:
                    raise VLAError(f"freeze_{name} is set, but this VLA has no {name}; remove the flag.")
                part.requires_grad_(False)
        self.post_init_done = True

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """Module classes to shard as FSDP2 units: the layers transformers marks as
        `_no_split_modules`, plus whatever child components declare."""
        unit_types: set[type[nn.Module]] = set()
        for module in self.modules():
            names = getattr(module, "_no_split_modules", None)
            if names:
                wanted = set(names)
                unit_types |= {type(sub) for sub in module.modules() if type(sub).__name__ in wanted}
            declared = getattr(module, "fsdp_unit_types", None)
            if module is not self and callable(declared):
                unit_types |= set(declared())
        return unit_types

    def reset(self) -> None:
        """Start a new episode: calls `reset()` on every part that has one (a stateful head
        drops its window of frames or its recurrent state). `Policy.reset()`, `vla eval`
        (every episode) and the server (every session) call it."""
        for child in self.children():
            reset = getattr(child, "reset", None)
            if callable(reset):
                reset()

    # ---- saving --------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        """The spec that rebuilds this VLA alone: the one it was built from (set by
        `build_vla`), with each part's resolved architecture (`vla_core.models.architecture`)."""
        if getattr(self, "component_spec", None) is None:
            raise VLAError(
                f"this {type(self).__name__} was constructed directly, so its config is unknown; "
                "build it with vla_core.build_vla(spec) to be able to save it."
            )
        return standalone_spec(self)

    def write_pretrained(
        self,
        directory: str | Path,
        extra_config: dict[str, Any] | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Write config.json and the weights into an existing directory (not atomic;
        `save_pretrained` and the trainer wrap it in an atomic directory). `state_dict`
        replaces `self.state_dict()`, e.g. the full weights gathered from FSDP shards."""
        self.write_config(directory, extra_config)
        save_state_dict(self.state_dict() if state_dict is None else state_dict, directory)

    def write_config(self, directory: str | Path, extra_config: dict[str, Any] | None = None) -> None:
        """Write config.json into an existing directory: `model` (the spec that rebuilds this VLA
        without any directory it was initialised from), `model_as_configured` and `extra_config`
        (an `inference_model` in it gets the trained parts' recorded architectures); the
        weights are written separately (`write_pretrained`, or as shards by the trainer)."""
        spec = self.spec
        config = {
            "format": "vla",
            "format_version": FORMAT_VERSION,
            "model": spec,
            # As the run config gave it (pretrained paths included): what a resume compares against.
            "model_as_configured": self.component_spec,
            **(extra_config or {}),
        }
        if config.get("inference_model"):  # it shares the trained parts, and so their recorded architecture
            config["inference_model"] = standalone_variant(config["inference_model"], self.component_spec, spec)
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(config, indent=2, default=str))

    def save_pretrained(self, directory: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
        """Save config and safetensors weights (and their checksums) atomically; loads back
        with `from_pretrained`."""
        with checkpoint_directory(directory) as tmp:
            self.write_pretrained(tmp, extra_config)
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> BaseVLA:
        """Load a VLA saved by `save_pretrained` (or a training checkpoint)."""
        from vla_core.models.pretrained import load_pretrained

        vla = load_pretrained(directory, **kwargs)
        if not isinstance(vla, cls):
            raise CheckpointError(f"'{directory}' holds a {type(vla).__name__}, not a {cls.__name__}.")
        return vla

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
