"""Hook implementations (group `vla.plugins`): teach `vla_core.load_pretrained` transformers' PI0.

Light on purpose: imported whenever the `vla` CLI starts, it imports the model code only
when a PI0 directory is actually loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_core.hooks import hookimpl


@hookimpl
def vla_load_foreign_checkpoint(path: Path, config: dict[str, Any]) -> Any | None:
    """A directory written by `transformers.PI0ForConditionalGeneration.save_pretrained`
    (config.json `model_type: pi0`) -> a PI0FlowMatching with its weights; None otherwise."""
    if config.get("model_type") != "pi0":
        return None
    from vla_paligemma.transformers_pi0 import load_transformers_pi0

    return load_transformers_pi0(path, config)
