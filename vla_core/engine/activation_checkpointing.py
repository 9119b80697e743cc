"""Gradient (activation) checkpointing: recompute each unit layer's activations in backward.

Uses the composable `torch.distributed._composable.checkpoint`, which hooks the module
in place: parameter names stay the same (checkpoints and LoRA key names do not change)
and it composes with `fully_shard` on the same modules.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def apply_activation_checkpointing(model: nn.Module, unit_types: Iterable[type[nn.Module]]) -> int:
    """Checkpoint every outermost submodule whose type is in `unit_types` (the VLA's FSDP
    units, i.e. its transformer layers); returns how many were wrapped."""
    from torch.distributed._composable import checkpoint

    wanted = set(unit_types)
    units: list[nn.Module] = []
    covered: set[int] = set()  # modules inside an already checkpointed unit
    for module in model.modules():  # pre-order: outer units come first
        if id(module) in covered or module is model or type(module) not in wanted:
            continue
        units.append(module)
        covered |= {id(m) for m in module.modules()}
    for module in units:
        checkpoint(module)
    return len(units)
