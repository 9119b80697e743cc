"""Process-group setup: one process by default, torchrun's environment when launched by it.

torchrun (`python -m torch.distributed.run`) sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; with WORLD_SIZE > 1 we join a process group over NCCL on
CUDA and gloo on CPU. Without them everything runs in this one process and every
collective below is the identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # None: no process group
    local_world_size: int = 1  # processes on this node (torchrun's LOCAL_WORLD_SIZE)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a float64 tensor over ranks (on the collective's device) and return it on CPU."""
        if not self.is_distributed:
            return values
        values = values.to(self.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values.cpu()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (pickled: only for small, trusted values)."""
        if not self.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.is_distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(timeout_s: float = 600.0) -> DistributedContext:
    """Join torchrun's process group when launched by it; otherwise a single process.

    The device is `cuda:<LOCAL_RANK>` when CUDA is available, else the CPU. `timeout_s`
    bounds every collective: a process whose peer died or stopped answering raises after
    that long instead of waiting forever (torch's default is 30 minutes).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size <= 1:
        return DistributedContext(device=device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(seconds=timeout_s)}
        if device.type == "cuda":
            kwargs["device_id"] = device  # binds NCCL to this GPU and enables eager init
        dist.init_process_group(**kwargs)
    return DistributedContext(rank, world_size, local_rank, device, backend, local_world_size)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group (a no-op for a single process)."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()



def on_main(context: DistributedContext, fn: Callable[..., T], *args: Any) -> T | None:
    """Run `fn(*args)` on rank 0 only (others get None); if it raises, every rank raises
    (rank 0 the original error, the others a VLAError quoting it), so no rank waits
    forever in the next collective."""
    from vla_core.engine.rank_failures import PeerFailedError

    if not context.is_distributed:
        return fn(*args)
    result, error = None, None
    if context.is_main:
        try:
            result = fn(*args)
        except BaseException as exc:
            error = exc
    failure = context.broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failure is not None:
        raise PeerFailedError(f"rank 0 failed, so this rank stops too: {failure}")
    return result
