"""vla hook implementations: `vla_core.load_pretrained` on a Hugging Face OpenVLA directory.

Kept light (no torch at import): the CLI imports every hook module when it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_core.hooks import hookimpl


@hookimpl
def vla_load_foreign_checkpoint(path: Path, config: dict[str, Any]) -> Any | None:
    """Load `openvla/openvla-7b`-style directories (config.json `model_type: openvla`), and
    OpenVLA-OFT ones (the same plus `action_head--*_checkpoint.pt`); None for anything else."""
    if config.get("model_type") != "openvla":
        return None
    from vla_openvla.hf_checkpoint import load_hf_openvla

    return load_hf_openvla(path, config)
