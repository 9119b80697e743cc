"""The training engine: `Trainer`, FSDP2 sharding, LoRA, checkpoints, and `Policy` for inference.

Importing this package is light; the names below import torch on first use.

    from vla_core.engine import Trainer, Policy
    Trainer(load_config("configs/tiny_llava.yaml")).fit()
    policy = Policy.from_pretrained("runs/tiny_llava/checkpoints/step-100")
    actions = policy.act(observation)          # (T, action_dim) in robot units
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "Trainer": "vla_core.engine.trainer",
    "TrainResult": "vla_core.engine.trainer",
    "Policy": "vla_core.engine.policy",
    "TrainingDivergedError": "vla_core.engine.errors",
    "export_checkpoint": "vla_core.engine.export",
    "read_metrics": "vla_core.engine.metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vla_core.engine' has no attribute {name!r}")
