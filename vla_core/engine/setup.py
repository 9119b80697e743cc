"""Building what a run trains: the dataset, the VLA (LoRA, checkpointing, FSDP), its processor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vla_core.config.run import RunConfig
from vla_core.engine.activation_checkpointing import apply_activation_checkpointing
from vla_core.engine.distributed import DistributedContext, on_main
from vla_core.engine.fsdp import shard_model
from vla_core.engine.lora import ADAPTER_DIR, apply_lora, base_key_map, load_adapter_weights
from vla_core.errors import CheckpointError, ConfigError


def build_dataset(config: RunConfig) -> Any:
    """The `data` section's dataset (group vla.datasets)."""
    from vla_core.models.build import build_component

    if config.data is None:
        raise ConfigError(
            "training needs a dataset: add a `data` section, e.g. {type: LeRobotDataset, root: path/to/dataset, "
            "chunk_size: 16}.",
            "data",
        )
    return build_component("datasets", config.data, "data")


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_resume_compatible(config: RunConfig, checkpoint: Path) -> None:
    """A run resumes only with the model it was trained with (other settings may change,
    e.g. more `train.steps`)."""
    from vla_core.models.pretrained import read_checkpoint_config

    saved = read_checkpoint_config(checkpoint)
    if _canonical(saved.get("model")) != _canonical(config.model):
        raise CheckpointError(
            f"the model in the config differs from the one in '{checkpoint}', so the run cannot resume from it. "
            "Resume with the config the run was started with (it is in that checkpoint's config.json), or start "
            "a new run with a different output_dir."
        )
    saved_lora = (saved.get("train") or {}).get("lora")
    current_lora = config.train.lora.model_dump(mode="json") if config.train.lora else None
    if _canonical(saved_lora) != _canonical(current_lora):
        raise CheckpointError(
            f"train.lora is {current_lora} but '{checkpoint}' was trained with {saved_lora}; resume with the "
            "same LoRA settings."
        )


def build_model(
    config: RunConfig, context: DistributedContext, resume: Path | None
) -> tuple[nn.Module, nn.Module, dict[str, str | None] | None]:
    """Build the VLA (every rank with the same seed, so all start from the same weights),
    load a resumed checkpoint's weights, then wrap it: LoRA, activation checkpointing and,
    with several processes, FSDP2. Returns (vla, trained model, LoRA key map or None)."""
    from vla_core.models.build import build_vla
    from vla_core.models.weights import load_into, load_state_dict

    torch.manual_seed(config.train.seed)
    vla = build_vla(config.model)
    unit_types = vla.fsdp_unit_types()
    if resume is not None:
        load_into(vla, load_state_dict(resume), strict=True, source=str(resume))
    model: nn.Module = vla
    key_map = None
    if config.train.lora is not None:
        model = apply_lora(vla, config.train.lora)
        key_map = base_key_map(model)
        if resume is not None:
            load_adapter_weights(model, resume / ADAPTER_DIR)
    model.to(context.device)
    if config.train.gradient_checkpointing:
        apply_activation_checkpointing(model, unit_types)
    if context.is_distributed:
        shard_model(model, unit_types, context)
    return vla, model, key_map


def build_processor(
    vla: nn.Module, dataset: Any, resume: Path | None, context: DistributedContext, output_dir: Path
) -> Any:
    """The VLA's processor (`model.processor`), fitted to the dataset (normalisation stats,
    tokenizer) on rank 0 and saved to `<output_dir>/`; the other ranks load that copy.
    A resumed run loads the checkpoint's processor, so normalisation never changes."""
    from vla_core import registry
    from vla_core.models.build import build_component

    spec = getattr(vla, "processor_spec", None)
    if spec is None:
        raise ConfigError(
            "training needs the VLA's processor (how raw samples become model inputs): set it, e.g. "
            "processor: {type: VLAProcessor, ...}; `vla info VLAProcessor` lists its settings.",
            "model.processor",
        )
    processor_cls = registry.load("processors", spec["type"])
    if resume is not None:
        return processor_cls.from_pretrained(resume)

    def fit_and_save() -> Any:
        processor = build_component("processors", spec, "model.processor")
        processor.fit(dataset)
        processor.save_pretrained(output_dir)
        return processor

    processor = on_main(context, fit_and_save)
    return processor if context.is_main else processor_cls.from_pretrained(output_dir)


def seed_training_rng(seed: int, rank: int) -> None:
    """Seed the RNGs used during training (dropout, noise) per rank, independently of how
    many random numbers building the model consumed."""
    import random

    words = np.random.SeedSequence([seed, rank, 1]).generate_state(2)
    torch.manual_seed(int(words[0]))
    np.random.seed(int(words[1]))
    random.seed(int(words[1]))
