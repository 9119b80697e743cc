"""The run config: what `vla train` reads.

    model:            a VLA spec (`type` + its parameters, nested component specs)
    inference_model:  optional VLA spec used by predict/serve/eval (e.g. a faster head
                      with the same parameter names, so the same weights load)
    data:             a dataset spec (group `vla.datasets`)
    train:            optimisation settings (TrainConfig)
    output_dir:       where metrics and checkpoints go
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vla_core.config.history import check_history_fits_head
from vla_core.config.validate import check_setting_keys, format_validation_error, validate_spec
from vla_core.errors import ConfigError

RUN_KEYS = ("model", "inference_model", "data", "train", "output_dir")

#: An AdamW beta: in [0, 1) (torch raises a bare ValueError otherwise).
Beta = Annotated[float, Field(ge=0, lt=1)]


class LoraConfig(BaseModel):
    """LoRA adapters through peft; only adapter weights train."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, title="rank", description="Rank of the low-rank update.")
    alpha: int = Field(32, gt=0, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Module names to adapt, or 'all-linear' for every linear layer."
    )
    modules_to_save: list[str] | None = Field(
        None, description="Modules trained in full next to the adapters (e.g. [vla_head]); saved in the adapter."
    )


class TrainConfig(BaseModel):
    """Optimisation settings of a run."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(1000, ge=1, description="Optimizer steps to run.")
    batch_size: int = Field(8, ge=1, description="Global batch size per optimizer step (all processes).")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not applied to norms and biases).")
    betas: tuple[Beta, Beta] = Field((0.9, 0.95), description="AdamW betas, each in [0, 1).")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps before the cosine decay.")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="Learning-rate schedule after warm-up.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Final lr as a fraction of the peak (cosine).")
    # > 0: torch's clipping with a negative norm flips the gradient's sign, with 0 zeroes it.
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the global gradient norm; None disables.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast where the device computes bf16 natively (CUDA Ampere+, CPUs with AMX or "
        "AVX512-BF16), else fp32. bf16 forces autocast (slow where emulated); fp32 never uses it.",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass.")
    seed: int = Field(0, description="Seed for initialisation, data order, noise.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    log_every: int = Field(10, ge=1, description="Steps between progress updates.")
    save_every: int = Field(500, ge=1, description="Steps between checkpoints (and one at the end).")
    keep_last: int = Field(3, ge=1, description="Checkpoints to keep; older ones are deleted.")
    lora: LoraConfig | None = Field(None, description="Train LoRA adapters instead of full weights.")
    sharding: Literal["fsdp", "hsdp"] = Field(
        "fsdp",
        description="With several processes: fsdp shards over all of them; hsdp replicates across nodes and shards "
        "within each node (a 2-D device mesh; gradients cross nodes once per step as an all-reduce).",
    )
    async_save: bool = Field(
        False, description="Write sharded checkpoints in the background while training goes on (DCP async_save); "
        "a checkpoint counts only once complete. Costs one more copy of each process's shards while a save is in "
        "flight. LoRA runs save in the foreground.",
    )
    collective_timeout_s: float = Field(
        600.0, gt=0, description="Seconds a process waits in a collective (all-gather, barrier) before it stops "
        "with an error naming the wait; bounds how long the others live after one process fails.",
    )


class RunConfig(BaseModel):
    """A validated run config; `model`, `inference_model` and `data` are resolved specs."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: dict[str, Any]
    inference_model: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    output_dir: str = "runs/default"


def warmup_warning(warmup_steps: int, steps: int) -> str:
    """The warning for a warm-up that the run never leaves."""
    return (f"train.warmup_steps ({warmup_steps}) is not shorter than train.steps ({steps}): the learning rate never "
            "reaches its peak and the schedule never decays. Lower warmup_steps or raise steps.")


def config_warnings(config: RunConfig) -> list[str]:
    """Settings that are valid but probably not what was meant (printed, not raised)."""
    train = config.train
    warnings = []
    if train.warmup_steps > 0 and train.warmup_steps >= train.steps:
        warnings.append(warmup_warning(train.warmup_steps, train.steps))
    if train.async_save and train.lora is not None:
        warnings.append("train.async_save has no effect with train.lora: a LoRA checkpoint (base weights and "
                        "adapter) is written in the foreground.")
    return warnings


def validate_run_config(raw: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Validate a raw run-config mapping; every error names its dotted path."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the file must hold a mapping with the keys {', '.join(RUN_KEYS)}.")
    for key in raw:
        if key not in RUN_KEYS:
            close = difflib.get_close_matches(str(key), RUN_KEYS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown top-level key.{hint} Valid keys: {', '.join(RUN_KEYS)}.", str(key))
    if "model" not in raw:
        raise ConfigError("missing 'model': a VLA spec with a 'type' (see `vla list-components --kind vlas`).")
    values: dict[str, Any] = {"model": validate_spec("vlas", raw["model"], "model")}
    if raw.get("inference_model") is not None:
        values["inference_model"] = validate_spec("vlas", raw["inference_model"], "inference_model")
    if raw.get("data") is not None:
        values["data"] = validate_spec("datasets", raw["data"], "data")
    if raw.get("train") is not None:
        values["train"] = validate_section(TrainConfig, raw["train"], "train")
    if raw.get("output_dir") is not None:
        values["output_dir"] = str(raw["output_dir"])
    check_history_fits_head(values["model"], values.get("data"))
    return RunConfig(**values)


def validate_section(model: type[BaseModel], raw: Any, path: str) -> BaseModel:
    """Validate a plain settings section, with suggestions for misspelt keys at any depth."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping, got {type(raw).__name__}.", path)
    check_setting_keys(model, raw, path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path)) from None
