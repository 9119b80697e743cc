"""Gradient (activation) checkpointing: recompute each unit layer's activations in backward.

transformers' models inside a VLA use their own switch (`activation_checkpointing_enable`):
their layers then drop the KV cache while checkpointed (recomputing a layer that appends
to a cache would append twice) and keep FSDP2's hooks outside the recomputation. Every
other unit layer (a plugin's DiT block, say) gets the composable
`torch.distributed._composable.checkpoint`, which hooks the module in place: parameter
names do not change (checkpoints and LoRA keys stay the same) and it composes with
`fully_shard` on the same modules.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def _enable_transformers_checkpointing(model: nn.Module) -> None:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency of vla-core
        return
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and module.supports_gradient_checkpointing:
            kwargs = {"use_reentrant": False}
            if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5.x name
                module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def apply_activation_checkpointing(model: nn.Module, unit_types: Iterable[type[nn.Module]]) -> int:
    """Checkpoint every outermost submodule whose type is in `unit_types` (the VLA's FSDP
    units, i.e. its transformer layers); returns how many are checkpointed."""
    from torch.distributed._composable import checkpoint

    _enable_transformers_checkpointing(model)
    wanted = set(unit_types)
    count = 0
    covered: set[int] = set()  # modules inside an already checkpointed unit
    for module in model.modules():  # pre-order: outer units come first
        if id(module) in covered or module is model or type(module) not in wanted:
            continue
        covered |= {id(m) for m in module.modules()}
        count += 1
        if not getattr(module, "gradient_checkpointing", False):  # not a transformers layer switched on above
            checkpoint(module)
    return count
