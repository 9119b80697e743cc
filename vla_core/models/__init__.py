"""Models: BaseVLA and the generic components (importing this imports torch)."""

from vla_core.models.base_vla import BaseVLA
from vla_core.models.build import build_component, build_vla
from vla_core.models.llava_vla import LlavaVLA
from vla_core.models.mlp_action_head import MLPActionHead
from vla_core.models.pretrained import load_pretrained
from vla_core.models.projectors import LinearProjector, MLPProjector
from vla_core.models.weights import LoadReport, load_into, load_state_dict, save_state_dict

__all__ = [
    "BaseVLA",
    "LinearProjector",
    "LlavaVLA",
    "LoadReport",
    "MLPActionHead",
    "MLPProjector",
    "build_component",
    "build_vla",
    "load_into",
    "load_pretrained",
    "load_state_dict",
    "save_state_dict",
]
