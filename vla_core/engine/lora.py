"""LoRA through peft: wrap a VLA, split a state dict into base weights and adapter, merge.

A LoRA checkpoint keeps the (frozen) base weights under their original names in
`model.safetensors` (or, written by several processes, as DCP shards in `model_shards/`:
`sharded_lora.py`) and the adapter in `adapter/` exactly as `PeftModel.save_pretrained`
writes it (`adapter_config.json`, `adapter_model.safetensors` with keys
`base_model.model.<path>.lora_A.weight`), so `peft.PeftModel.from_pretrained(vla,
"<checkpoint>/adapter")` loads it. `load_pretrained` merges the adapter into the weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla_core.config.run import LoraConfig
from vla_core.errors import CheckpointError, ConfigError

ADAPTER_DIR = "adapter"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


def apply_lora(vla: nn.Module, lora: LoraConfig) -> Any:
    """Wrap `vla` in a `peft.PeftModel` with LoRA on `lora.target_modules` (suffixes of module
    names, or 'all-linear'); only the adapters (and `modules_to_save` copies) train."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    target = lora.target_modules
    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target if isinstance(target, str) else list(target),
        modules_to_save=list(lora.modules_to_save) if lora.modules_to_save else None,
        bias="none",
    )
    try:
        return get_peft_model(vla, peft_config)
    except ValueError as exc:  # peft: target modules not found in the model
        raise ConfigError(
            f"{exc} Name modules by the end of their path (e.g. q_proj, v_proj) or use 'all-linear'; "
            "`vla build CONFIG` prints the model's parts.",
            "train.lora.target_modules",
        ) from None


def _is_tuner_layer(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _is_wrapper(module: nn.Module) -> bool:
    from peft.utils.other import AuxiliaryTrainingWrapper

    return isinstance(module, AuxiliaryTrainingWrapper)


def base_key_map(peft_model: nn.Module) -> dict[str, str | None]:
    """peft state-dict key -> the original key of the base weight it holds, or None for
    adapter tensors. Computed from the module tree (before sharding) because a peft
    infix like `base_layer` is only an infix inside a tuner layer."""
    mapping: dict[str, str | None] = {}
    for key in peft_model.state_dict():
        parts = key.split(".")
        current: nn.Module | None = peft_model
        original: list[str] = []
        is_adapter = False
        for i, part in enumerate(parts):
            child = getattr(current, part, None) if current is not None else None
            within_peft = i >= 2  # "base_model.model." is the wrapper
            if not isinstance(child, nn.Module):
                original.append(part)
                current = None
            elif within_peft and _is_tuner_layer(current) and part != "base_layer":
                is_adapter = True  # lora_A, lora_B, lora_dropout, magnitude vectors
                break
            elif within_peft and _is_wrapper(current) and part != "original_module":
                is_adapter = True  # a trained modules_to_save copy
                break
            else:
                if within_peft and part not in ("base_layer", "original_module"):
                    original.append(part)
                current = child
        mapping[key] = None if is_adapter else ".".join(original)
    return mapping


def split_state_dict(
    full_state: Mapping[str, torch.Tensor], key_map: Mapping[str, str | None]
) -> dict[str, torch.Tensor]:
    """The base weights of a gathered peft state dict, under their original names."""
    return {key_map[k]: v for k, v in full_state.items() if key_map.get(k)}


def adapter_state_dict(peft_model: Any, full_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter tensors of a gathered state dict, keyed as peft saves them."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(peft_model, state_dict=dict(full_state))


def write_adapter(directory: Path, peft_model: Any, adapter_state: Mapping[str, torch.Tensor]) -> None:
    """Write `adapter_config.json` and `adapter_model.safetensors` into `directory` (inside a
    checkpoint's atomic_directory, which fsyncs them)."""
    from safetensors.torch import save_file

    from vla_core.atomic import writing

    directory.mkdir(parents=True, exist_ok=True)
    config = peft_model.peft_config["default"].to_dict()
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    (directory / ADAPTER_CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    weights = directory / ADAPTER_WEIGHTS_NAME
    with writing(weights):
        save_file({k: v.contiguous() for k, v in adapter_state.items()}, str(weights), metadata={"format": "pt"})


def read_adapter_state(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / ADAPTER_WEIGHTS_NAME
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"could not read the LoRA adapter '{path}' ({exc}); restore it or re-save.") from None


def load_adapter_weights(peft_model: Any, directory: Path) -> None:
    """Load a saved adapter into an (unsharded) peft model built with the same LoRA config."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(peft_model, read_adapter_state(directory))
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise CheckpointError(
            f"the adapter in '{directory}' has tensors the model lacks: {', '.join(unexpected[:10])}. "
            "Resume with the LoRA settings (train.lora) the checkpoint was trained with."
        )


def merge_adapter(vla: nn.Module, directory: str | Path) -> nn.Module:
    """`vla` (holding the base weights) with the adapter in `directory` merged into its
    weights: a plain module again, as fast as the base model."""
    from peft import PeftModel

    directory = Path(directory)
    if not (directory / ADAPTER_CONFIG_NAME).is_file():
        raise CheckpointError(f"'{directory}' is not a peft adapter directory: it has no {ADAPTER_CONFIG_NAME}.")
    peft_model = PeftModel.from_pretrained(vla, str(directory), is_trainable=False)
    return peft_model.merge_and_unload()
