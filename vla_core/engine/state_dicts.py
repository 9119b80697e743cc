"""Full (unsharded) model and optimizer state dicts, from and into sharded or plain models.

`torch.distributed.checkpoint.state_dict` gathers FSDP2's DTensor shards into full
tensors on rank 0 (CPU) and scatters full tensors back into this rank's shards; on a
plain single-process model the same calls return and load ordinary state dicts. Keys
are parameter names, so a checkpoint does not depend on the number of processes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from vla_core.engine.distributed import DistributedContext

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's tensors on CPU; complete on rank 0, empty on the other ranks.
    A collective: every rank must call it."""
    return get_model_state_dict(model, options=_GATHER)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name, unsharded, on rank 0 (a collective)."""
    return get_optimizer_state_dict(model, optimizer, options=_GATHER)


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], context: DistributedContext
) -> None:
    """Load a full optimizer state (read by rank 0; other ranks pass {} and receive their
    shards by broadcast) into a model that may be sharded, exactly as it was saved.

    A parameter that never received a gradient (e.g. an unused pooling head) has no AdamW
    state in the checkpoint, and has none after loading either. torch's loader first gives
    every parameter a zero state (an optimizer step at lr 0, so there is a slot to load
    into); left there, a parameter whose first gradient comes after the resume would take
    its first step bias-corrected as its second and drift from an uninterrupted run.
    """
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=context.is_distributed, strict=False)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=options)
    saved = context.broadcast_object(sorted(state.get("state", {})) if context.is_main else None)
    drop_state_not_saved(model, optimizer, set(saved))


#: Name parts that wrappers (activation checkpointing, torch.compile, FSDP1) insert into
#: parameter names; state dicts are keyed by the names without them.
_WRAPPER_PARTS = ("_checkpoint_wrapped_module", "_orig_mod", "_fsdp_wrapped_module")


def state_dict_name(parameter_name: str) -> str:
    """`model.named_parameters()` name -> the key of that parameter in a state dict."""
    return ".".join(part for part in parameter_name.split(".") if part not in _WRAPPER_PARTS)


def drop_state_not_saved(model: nn.Module, optimizer: torch.optim.Optimizer, saved: set[str]) -> list[str]:
    """Remove the optimizer state of every parameter whose name is not in `saved` -> those names."""
    dropped = []
    for name, param in model.named_parameters():
        if param in optimizer.state and state_dict_name(name) not in saved:
            del optimizer.state[param]
            dropped.append(state_dict_name(name))
    return dropped
