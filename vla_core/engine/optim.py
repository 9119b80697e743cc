"""AdamW with decay/no-decay parameter groups, and the warm-up + cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vla_core.config.run import TrainConfig


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)) or (
        "Norm" in type(module).__name__
    )


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in two AdamW groups: weights decay; biases, norm scales and
    every other 1-D parameter do not (decaying them only shrinks the model's gains).

    Frozen parameters (`freeze_*`, LoRA base weights) are left out of the optimizer.
    """
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if _is_norm(module):
            no_decay_ids |= {id(p) for p in module.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith("bias") or id(param) in no_decay_ids:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "decay": True},
        {"params": no_decay, "weight_decay": 0.0, "decay": False},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of `model` (build it after FSDP sharding:
    `fully_shard` replaces the parameters)."""
    groups = parameter_groups(model, train.weight_decay)
    if not groups:
        from vla_core.errors import ConfigError

        raise ConfigError(
            "the model has no trainable parameters: every part is frozen. Unset a freeze_* flag or enable train.lora.",
            "model",
        )
    return torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas), eps=train.eps)


def lr_factor(train: TrainConfig) -> Callable[[int], float]:
    """step -> multiplier of the peak lr: linear warm-up over `warmup_steps` (the first step
    already trains at lr / warmup_steps), then cosine decay to `min_lr_ratio` at `steps`,
    or constant."""

    def factor(step: int) -> float:
        if step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        if train.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps))
        return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step. The factor is a plain function, so the
    saved state holds only the step count and a resumed run follows its current config."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train))


def follow_config(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, train: TrainConfig
) -> None:
    """After restoring a checkpoint, let the current config set the hyperparameters (lr and
    schedule, e.g. more `steps`; betas, eps, weight decay); the step count and AdamW's
    moments stay as saved. With an unchanged config this changes nothing."""
    factor = lr_factor(train)
    scheduler.base_lrs = [train.lr] * len(optimizer.param_groups)
    for group in optimizer.param_groups:
        group["initial_lr"] = train.lr
        group["lr"] = train.lr * factor(scheduler.last_epoch)  # the expression LambdaLR uses
        group["betas"], group["eps"] = tuple(train.betas), train.eps
        group["weight_decay"] = train.weight_decay if group.get("decay", True) else 0.0
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() returns
