"""FSDP2 sharding: `fully_shard` on every layer the VLA names as a unit, then on the root.

Each unit's parameters are flattened into one all-gather in forward and one
reduce-scatter in backward; the root holds what no unit owns (embeddings, heads, norms).
Parameters become DTensors sharded on dim 0 over the ranks, so every rank keeps about
1/world_size of the parameter and optimizer bytes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from vla_core.engine.distributed import DistributedContext


def shard_model(model: nn.Module, unit_types: Iterable[type[nn.Module]], context: DistributedContext) -> nn.Module:
    """Shard `model` in place over all ranks and return it.

    `unit_types` come from `vla.fsdp_unit_types()`; units are sharded bottom-up (children
    before the modules that contain them), which `fully_shard` requires.
    """
    # Our modules return views (e.g. a pooled token); nothing modifies them in place afterwards.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(context.device.type, (context.world_size,))
    wanted = set(unit_types)
    units = [m for m in model.modules() if m is not model and type(m) in wanted]
    for module in reversed(units):  # modules() is pre-order; reversed puts children first
        fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a (possibly sharded) tensor."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def local_parameter_bytes(model: nn.Module) -> int:
    """Bytes of parameters this rank stores."""
    return sum(local_tensor(p).numel() * p.element_size() for p in model.parameters())


def local_optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of optimizer state tensors (e.g. AdamW's moments) this rank stores."""
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.numel() > 1:  # skip the scalar step counter
                total += local_tensor(value).numel() * value.element_size()
    return total


def local_shard_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of parameters and optimizer state this rank holds."""
    return {"parameters": local_parameter_bytes(model), "optimizer": local_optimizer_bytes(optimizer)}
