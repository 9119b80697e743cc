"""Hook implementations (group `vla.plugins`): teach `vla_core.load_pretrained` (and so
`Policy.from_pretrained`) GR00T N1.5 checkpoint directories.

Light on purpose: the CLI imports every hook module when it starts; the model code is
imported only when a GR00T directory is actually loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_core.hooks import hookimpl


@hookimpl
def vla_load_foreign_checkpoint(path: Path, config: dict[str, Any]) -> Any | None:
    """A GR00T N1.5 directory (config.json `model_type: gr00t_n1_5`) -> LlavaVLA + EagleBackbone +
    FlowMatchingHead with its weights and a GR00TProcessor; None for anything else."""
    from vla_eagle.gr00t_checkpoint import GR00T_MODEL_TYPES

    if config.get("model_type") not in GR00T_MODEL_TYPES:
        return None
    from vla_eagle.gr00t_checkpoint import load_gr00t_n15

    return load_gr00t_n15(path, config)
