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
    # `model` records the resolved architectures; `model_as_configured` is the spec as the run gave it.
    if _canonical(saved.get("model_as_configured", saved.get("model"))) != _canonical(config.model):
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
    """The VLA to train, with a resumed checkpoint's weights, wrapped: LoRA, activation
    checkpointing and, with several processes, FSDP2. Returns (vla, trained model, LoRA key
    map or None).

    One process builds it as it always did (seeded, then the checkpoint's weights). Several
    processes never hold a full copy each: see `_build_sharded`.
    """
    if context.is_distributed:
        return _build_sharded(config, context, resume)
    vla, model, key_map = _build_whole(config, resume)
    model.to(context.device)
    if config.train.gradient_checkpointing:
        apply_activation_checkpointing(model, vla.fsdp_unit_types())
    return vla, model, key_map


def _build_whole(config: RunConfig, resume: Path | None) -> tuple[nn.Module, nn.Module, dict[str, str | None] | None]:
    """Build the VLA on the CPU with the run's seed (so every run with that seed starts from
    the same weights, on any number of processes), load a checkpoint's weights (safetensors,
    or DCP shards assembled), apply LoRA."""
    from vla_core.models.build import build_vla
    from vla_core.models.weights import load_into, load_state_dict

    torch.manual_seed(config.train.seed)
    vla = build_vla(config.model)
    if resume is not None:
        load_into(vla, load_state_dict(resume), strict=True, source=str(resume))
    model: nn.Module = vla
    key_map = None
    if config.train.lora is not None:
        model = apply_lora(vla, config.train.lora)
        key_map = base_key_map(model)
        if resume is not None:
            load_adapter_weights(model, resume / ADAPTER_DIR)
    return vla, model, key_map


def _build_sharded(
    config: RunConfig, context: DistributedContext, resume: Path | None
) -> tuple[nn.Module, nn.Module, dict[str, str | None] | None]:
    """Several processes: every one builds the VLA with its parameters on the meta device,
    FSDP2 shards it, and each allocates only its shards, which are then filled:

    - from a sharded checkpoint: each process reads the slices it owns (DCP); with LoRA the
      base is read under the VLA's parameter names and the adapter from `adapter/`
      (`sharded_lora.load_sharded_lora`);
    - otherwise rank 0 builds the whole model as one process would (same seed, same initial
      weights; a safetensors checkpoint or pretrained weights loaded into it) and
      broadcasts it, each process keeping its shards; rank 0's copy is freed before the
      first step. So only rank 0 ever holds the full weights, once, briefly.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    from vla_core.engine.meta_init import materialize_shards, parameters_on_meta
    from vla_core.engine.sharded_checkpoint import load_sharded_model
    from vla_core.models.architecture import buildable_spec
    from vla_core.models.build import build_vla
    from vla_core.models.pretrained import read_checkpoint_config, without_pretrained_paths
    from vla_core.models.sharded_weights import is_sharded

    from_shards = resume is not None and is_sharded(resume)
    full_state: dict[str, torch.Tensor] | None = None
    specs = None
    if context.is_main:
        if from_shards:
            saved = buildable_spec(read_checkpoint_config(resume)["model"], "vlas", "model", resume)
            specs = (saved, saved, config.model)
        else:
            whole_vla, whole_model, _ = _build_whole(config, resume)
            spec = whole_vla.spec  # parts resolved from directories rebuild without them
            specs = (spec, without_pretrained_paths(spec), whole_vla.component_spec)
            full_state = {name: tensor.detach() for name, tensor in whole_model.state_dict().items()}
            del whole_vla, whole_model
    spec, build_spec, configured = context.broadcast_object(specs)
    with parameters_on_meta():
        # Weights come from rank 0 or the shards: no part loads its pretrained files again.
        vla = build_vla(build_spec)
    _keep_spec(vla, spec, configured)
    unit_types = vla.fsdp_unit_types()
    model: nn.Module = vla
    key_map = None
    if config.train.lora is not None:
        model = apply_lora(vla, config.train.lora)
        key_map = base_key_map(model)
    if config.train.gradient_checkpointing:
        apply_activation_checkpointing(model, unit_types)
    shard_model(model, unit_types, context, config.train.sharding)
    materialize_shards(model, context)
    if from_shards and key_map is not None:
        from vla_core.engine.sharded_lora import load_sharded_lora

        load_sharded_lora(model, key_map, resume)
    elif from_shards:
        load_sharded_model(model, resume)
    else:
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_model_state_dict(model, full_state if full_state is not None else {}, options=options)
    del full_state
    return vla, model, key_map


def _keep_spec(vla: nn.Module, spec: dict[str, Any], configured: dict[str, Any]) -> None:
    """Let a VLA built from the resolved `spec` save what the whole model on rank 0 would:
    `configured` (the run's spec, pretrained paths included) as `model_as_configured`, so a
    resume finds the same model, and each part's resolved spec as `model`."""
    vla.component_spec = configured
    for name, part_spec in spec.items():
        part = getattr(vla, name, None)
        if isinstance(part, nn.Module) and isinstance(part_spec, dict):
            part.component_spec = part_spec


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
        processor = processor_cls.from_pretrained(resume)
        check = getattr(processor, "check_dataset", None)
        if callable(check):  # the checkpoint's normalisation must describe this dataset
            check(dataset)
        return processor

    def fit_and_save() -> Any:
        processor = build_component("processors", spec, "model.processor")
        processor.fit(dataset)
        processor.save_pretrained(output_dir)
        return processor

    processor = on_main(context, fit_and_save)
    return processor if context.is_main else processor_cls.from_pretrained(output_dir)


def _fact(obj: Any, *names: str) -> int | None:
    """The first of `names` that `obj` has as a positive int (properties that raise count as absent)."""
    for name in names:
        try:
            value = getattr(obj, name, None)
        except Exception:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_model_fits_processor(vla: nn.Module, processor: Any) -> None:
    """Fail before the first step when the processor's inputs do not fit the model: token
    ids beyond the model's vocabulary (an IndexError mid-run otherwise), or state, action
    or chunk sizes the head would silently cut. Sizes a component does not expose are not
    checked."""
    from vla_core.models.summary import find_config_value

    head = getattr(vla, "vla_head", None)
    model = head if head is not None else vla
    path = "model.vla_head" if head is not None else "model"
    # A transformers config's vocab_size, else one a plugin component declares as an attribute.
    model_vocab = find_config_value(vla, "vocab_size") or next(
        (v for v in (_fact(m, "vocab_size") for m in vla.modules() if m is not vla) if v), None)
    vocab = _fact(processor, "vocab_size")
    if vocab and model_vocab and vocab > model_vocab:
        raise ConfigError(
            f"the processor's tokenizer has {vocab} token ids but the model's vocabulary has {model_vocab}; "
            "raise the language model's vocab_size to at least that (its config) or use a smaller tokenizer.",
            "model",
        )
    checks = (
        ("action_dim", ("action_dim", "max_action_dim"), "actions"),
        ("state_dim", ("state_dim", "max_state_dim"), "states"),
    )
    for data_name, model_names, what in checks:
        data_dim, model_dim = _fact(processor, data_name), _fact(model, *model_names)
        if data_dim and model_dim and model_dim < data_dim:
            raise ConfigError(
                f"the dataset's {what} have {data_dim} dims but the model reads only {model_dim}, so the rest "
                f"would be silently dropped; set {model_names[0]} (or max_{data_name}) to at least {data_dim}.",
                f"{path}.{model_names[0]}",
            )
    check_image_preprocessing(vla, processor)
    chunk, model_chunk = _fact(processor, "chunk_size"), _fact(model, "chunk_size", "traj_length", "n_action_steps")
    if chunk and model_chunk and model_chunk > chunk:
        raise ConfigError(
            f"the model predicts {model_chunk} actions per chunk but the data gives targets for {chunk}; set the "
            "same chunk size in model.processor, data and the head.",
            f"{path}.chunk_size",
        )


def check_image_preprocessing(vla: nn.Module, processor: Any) -> None:
    """A backbone that declares the images it expects (`processor_settings()`: image_size,
    image_mean, image_std, as TransformersVLMBackbone reads them from the model's saved image
    processor) must get them so from the processor: a different mean/std trains silently wrong."""
    for module in vla.modules():
        settings = getattr(module, "processor_settings", None)
        if not callable(settings):
            continue
        wanted = settings()
        for name, value in wanted.items():
            have = getattr(processor, name, None)
            if have is None:
                continue
            have_list = [float(v) for v in (have.tolist() if hasattr(have, "tolist") else have)]
            differs = len(have_list) != len(value) or any(
                abs(a - float(b)) > 1e-6 for a, b in zip(have_list, value, strict=True)
            )
            if differs:
                raise ConfigError(
                    f"the processor's {name} is {have_list} but the backbone ({type(module).__name__}) was trained "
                    f"with {list(value)} (its model's image processor); set model.processor.{name}: {list(value)}.",
                    f"model.processor.{name}",
                )


def seed_training_rng(seed: int, rank: int) -> None:
    """Seed the RNGs used during training (dropout, noise) per rank, independently of how
    many random numbers building the model consumed."""
    import random

    words = np.random.SeedSequence([seed, rank, 1]).generate_state(2)
    torch.manual_seed(int(words[0]))
    np.random.seed(int(words[1]))
    random.seed(int(words[1]))
