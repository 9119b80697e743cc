"""Configs: component specs keyed on `type`, run configs, file loading and overrides."""

from vla_core.config.spec import (
    ComponentKind,
    DatasetSpec,
    HeadSpec,
    LLMBackboneSpec,
    ProcessorSpec,
    ProjectorSpec,
    VisionBackboneSpec,
    VLASpec,
    VLMBackboneSpec,
)

__all__ = [
    "ComponentKind",
    "DatasetSpec",
    "HeadSpec",
    "LLMBackboneSpec",
    "ProcessorSpec",
    "ProjectorSpec",
    "VLASpec",
    "VLMBackboneSpec",
    "VisionBackboneSpec",
]
