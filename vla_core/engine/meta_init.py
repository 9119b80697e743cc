"""Building a model without its memory: parameters on the meta device, buffers real.

A sharded run builds the VLA on every process with `parameters_on_meta()`: every
parameter a module registers is replaced by a meta tensor (shape and dtype, no bytes),
while buffers (rotary frequencies, position ids, normalisation constants) are computed as
usual, on the CPU: they are small, and some (non-persistent ones) are in no checkpoint, so
they must come from the component's own constructor. FSDP2 then shards the meta
parameters and `materialize_shards` gives every process memory for its shards only,
filled from rank 0 (`vla_core.engine.setup.build_model`) or from a sharded checkpoint.

Plugin authors: a component is meta-safe when its `__init__` only creates parameters and
computes buffers from its arguments (never from parameter values, never `.item()` on a
parameter); `nn.Linear`, transformers models and everything in vla_core are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from vla_core.engine.distributed import DistributedContext


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Inside the block, parameters registered by any module live on the meta device.

    The constructor's own initialisation then runs on meta tensors (a no-op that allocates
    nothing). A parameter that is already on meta (e.g. tied weights assigned twice) is kept
    as the same object, so ties survive.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        registered = module._parameters.get(name)
        if registered is None or registered.device.type == "meta":
            return
        param_cls = type(registered)
        extra = dict(registered.__dict__)  # subclass attributes (e.g. peft/bnb flags); empty for nn.Parameter
        extra.pop("requires_grad", None)
        meta = param_cls(registered.to("meta"), requires_grad=registered.requires_grad)
        meta.__dict__.update(extra)
        module._parameters[name] = meta

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def has_meta_parameters(model: nn.Module) -> bool:
    """Whether any parameter of `model` is still on the meta device (built by `parameters_on_meta`)."""
    return any(p.device.type == "meta" for p in model.parameters())


def materialize_shards(model: nn.Module, context: DistributedContext) -> None:
    """Allocate this process's shards of a meta-built, sharded `model` on its device
    (uninitialised: the caller loads them), keeping the buffers the constructor computed.

    `to_empty` would replace the buffers with uninitialised memory as well, so they are
    set aside first and put back (moved to the device).
    """
    buffers = [
        (module, name, buffer)
        for module in model.modules()
        for name, buffer in module._buffers.items()
        if buffer is not None
    ]
    model.to_empty(device=context.device)
    with torch.no_grad():
        for module, name, buffer in buffers:
            module._buffers[name] = buffer.to(context.device)
