"""FSDP2 sharding: `fully_shard` on every layer the VLA names as a unit, on the large
modules outside them (token embeddings, LM heads), then on the root, over a 1-D mesh
(FSDP) or a 2-D one (HSDP: replicate across nodes, shard within).

Each unit's parameters are flattened into one all-gather in forward and one
reduce-scatter in backward; the root holds what no unit owns (norms, projector, action
head). Parameters become DTensors sharded on dim 0 over the ranks, so every rank keeps
about 1/world_size of the parameter and optimizer bytes.

Why the large outside modules are units of their own: FSDP2 keeps the root's parameters
unsharded from forward to the end of backward and reduces the root's gradients only
then, so a 32k x 1024 token embedding left in the root holds its weight and its gradient
unsharded (2 x 131 MiB in fp32) through the whole backward pass, on top of every other
gradient. As a unit, it is gathered once in forward and kept (`reshard_after_forward=False`:
backward needs it again), and its gradient is reduce-scattered as soon as it exists
(`fsdp_early_reduce.py`), which frees both. On gloo, every unit's collectives run in
bounded pieces (`gloo_collectives.py`). Measured: `benchmarks/fsdp_memory.py`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from vla_core.engine.distributed import DistributedContext
from vla_core.engine.fsdp_early_reduce import reduce_when_accumulated
from vla_core.engine.gloo_collectives import PiecewiseAllGather, PiecewiseReduceScatter, stages_whole_buffers
from vla_core.errors import ConfigError

#: A leaf module outside every layer unit that owns at least this many parameters itself
#: (an LM head) becomes a unit of its own; token embeddings always do.
OWN_UNIT_MIN_PARAMETERS = 1 << 20


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
    for module in large_modules_outside(model, units):
        fully_shard(module, mesh=mesh, reshard_after_forward=False)
        if isinstance(module, nn.Embedding):  # its input (token ids) carries no gradient
            reduce_when_accumulated(module)
    fully_shard(model, mesh=mesh)
    if stages_whole_buffers(mesh.get_group(mesh.ndim - 1)):
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_custom_all_gather(PiecewiseAllGather())
                module.set_custom_reduce_scatter(PiecewiseReduceScatter())
    return model


def large_modules_outside(model: nn.Module, units: list[nn.Module]) -> list[nn.Module]:
    """Leaf modules outside every unit to shard as units of their own: each `nn.Embedding`,
    and any other leaf owning >= OWN_UNIT_MIN_PARAMETERS parameters (an LM head). A module
    sharing a parameter with another module (an LM head tied to the embedding) stays in
    the root: FSDP2 gives every parameter to one unit, and both users need it."""
    inside = {id(m) for unit in units for m in unit.modules()}
    users: dict[int, int] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            users[id(param)] = users.get(id(param), 0) + 1
    chosen = []
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if module is model or id(module) in inside or not own or any(True for _ in module.children()):
            continue
        if any(users[id(p)] > 1 for p in own):
            continue
        if isinstance(module, nn.Embedding) or sum(p.numel() for p in own) >= OWN_UNIT_MIN_PARAMETERS:
            chosen.append(module)
    return chosen


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
