"""FSDP2 sharding: `fully_shard` on every layer the VLA names as a unit, then on the root,
over a 1-D mesh (FSDP) or a 2-D one (HSDP: replicate across nodes, shard within).

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
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from vla_core.engine.distributed import DistributedContext
from vla_core.errors import ConfigError


def device_mesh(context: DistributedContext, sharding: str = "fsdp") -> DeviceMesh:
    """The mesh the model is sharded over.

    `fsdp`: one dimension, every process holds 1/world_size of each unit. `hsdp`: two,
    (nodes, processes per node): each node holds a full replica sharded over its own
    processes, so the per-layer all-gathers stay inside a node and only the gradient
    all-reduce crosses nodes. On one node `hsdp` is `fsdp`.
    """
    per_node = context.local_world_size
    if sharding == "hsdp" and context.world_size > per_node:
        if context.world_size % per_node:
            raise ConfigError(
                f"train.sharding hsdp needs the same number of processes on every node, but {context.world_size} "
                f"processes do not split into nodes of {per_node}; use sharding: fsdp or equal --nproc per node.",
                "train.sharding",
            )
        shape = (context.world_size // per_node, per_node)
        return init_device_mesh(context.device.type, shape, mesh_dim_names=("replicate", "shard"))
    return init_device_mesh(context.device.type, (context.world_size,), mesh_dim_names=("shard",))


def shard_model(
    model: nn.Module, unit_types: Iterable[type[nn.Module]], context: DistributedContext, sharding: str = "fsdp"
) -> nn.Module:
    """Shard `model` in place over the ranks (`device_mesh(context, sharding)`) and return it.

    `unit_types` come from `vla.fsdp_unit_types()`; units are sharded bottom-up (children
    before the modules that contain them), which `fully_shard` requires. The model may be
    on the meta device (`meta_init.parameters_on_meta`): the shards are then meta too,
    until `meta_init.materialize_shards` allocates them.
    """
    # Our modules return views (e.g. a pooled token); nothing modifies them in place afterwards.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    mesh = device_mesh(context, sharding)
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
