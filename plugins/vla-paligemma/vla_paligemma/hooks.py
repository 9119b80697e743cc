"""Hook implementations (group `vla.plugins`): teach `vla_core.load_pretrained` the released pi0 layouts.

* transformers' PI0 (`PI0ForConditionalGeneration.save_pretrained`, config.json `model_type: pi0`);
* openpi's PyTorch pi0 / pi0.5 (`examples/convert_jax_model_to_pytorch.py`: config.json with
  `paligemma_variant` / `action_expert_variant`, `assets/<asset_id>/norm_stats.json`).

Either gets openpi's processor (`OpenPIProcessor`) when the directory holds the norm stats
(`assets/<asset_id>/norm_stats.json`) and the PaliGemma SentencePiece tokenizer
(`paligemma_tokenizer.model` or `tokenizer.model`), so `Policy.from_pretrained(dir)` runs on
raw observations. Light on purpose: imported whenever the `vla` CLI starts, it imports the
model code only when such a directory is actually loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_core.hooks import hookimpl


@hookimpl
def vla_load_foreign_checkpoint(path: Path, config: dict[str, Any]) -> Any | None:
    """A transformers PI0 or an openpi PyTorch pi0 / pi0.5 directory -> the VLA with its weights
    (and its OpenPIProcessor when the files for it are there); None for anything else."""
    if config.get("model_type") == "pi0":
        from vla_paligemma.transformers_pi0 import load_transformers_pi0

        return load_transformers_pi0(path, config)
    from vla_paligemma.openpi_checkpoint import is_openpi_config

    if is_openpi_config(config):
        from vla_paligemma.openpi_checkpoint import load_openpi_checkpoint

        return load_openpi_checkpoint(path, config)
    return None
