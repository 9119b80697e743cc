"""FSDP2's all-gather and reduce-scatter over gloo, in pieces of bounded size.

gloo's `all_gather_into_tensor` and `reduce_scatter_tensor` stage the whole unsharded
buffer in a temporary of their own. Measured on torch 2.14.1, 2 processes: a 256 MiB
reduce-scatter input raised each process's peak RSS by 256 MiB, a 256 MiB all-gather
output by another 256 MiB. FSDP2 already holds that buffer, so each unit's collectives
briefly cost twice its unsharded size, on top of everything alive at that moment: for the
unit holding a 32k x 1024 token embedding that is 131 MiB more at the end of its backward.

`PiecewiseAllGather` and `PiecewiseReduceScatter` implement FSDP2's custom-collective
interface (`FSDPModule.set_custom_all_gather` / `set_custom_reduce_scatter`: an
`allocate` and a `__call__`) with the same gloo collectives run over column blocks of the
(world_size, shard) layout FSDP2 uses: rank r's shard is row r. Each call then moves at
most `piece_bytes` per rank, and its temporaries (ours and gloo's) are bounded by that,
whatever the unit's size. The values are the same: every element is still the sum (or
the copy) of the same world_size values; with 2 processes the sums are bitwise equal (a +
b == b + a), with more, gloo may add them in another order (float rounding).

The collectives are synchronous (gloo on CPU already is): they return `None`, which FSDP2
takes as "done". NCCL does not stage buffers this way and keeps FSDP2's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

#: Bytes per rank moved by one gloo call: big enough that the per-call latency (tens of
#: microseconds on loopback) is noise, small next to any unit of a real model.
PIECE_BYTES = 4 << 20


class _Allocate:
    """FSDP2's `Comm.allocate`: a plain tensor (no communication memory pool on CPU)."""

    def allocate(self, size: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.empty(*size, dtype=dtype, device=device)


def _columns_per_piece(element_size: int, piece_bytes: int) -> int:
    """How many elements of one rank's shard go into one gloo call."""
    return max(1, piece_bytes // element_size)


class PiecewiseAllGather(_Allocate):
    """output (world_size * S,) <- every rank's input (S,), `piece_bytes` of input at a time."""

    def __init__(self, piece_bytes: int = PIECE_BYTES) -> None:
        self.piece_bytes = piece_bytes

    def __call__(
        self, output_tensor: torch.Tensor, input_tensor: torch.Tensor, group: dist.ProcessGroup, async_op: bool = False
    ) -> None:
        world_size, shard = group.size(), input_tensor.numel()
        step = _columns_per_piece(input_tensor.element_size(), self.piece_bytes)
        if shard <= step:
            dist.all_gather_single(output_tensor, input_tensor, group=group)
            return None
        rows = output_tensor.view(world_size, shard)
        for start in range(0, shard, step):
            stop = min(shard, start + step)
            piece = torch.empty(world_size, stop - start, dtype=output_tensor.dtype, device=output_tensor.device)
            dist.all_gather_single(piece.view(-1), input_tensor[start:stop].contiguous(), group=group)
            rows[:, start:stop].copy_(piece)
        return None


class PiecewiseReduceScatter(_Allocate):
    """output (S,) <- the `op`-reduction over ranks of row `rank` of input (world_size * S,),
    `piece_bytes` of output at a time."""

    def __init__(self, piece_bytes: int = PIECE_BYTES) -> None:
        self.piece_bytes = piece_bytes

    def __call__(
        self,
        output_tensor: torch.Tensor,
        input_tensor: torch.Tensor,
        group: dist.ProcessGroup,
        op: dist.ReduceOp,
        async_op: bool = False,
    ) -> None:
        world_size, shard = group.size(), output_tensor.numel()
        step = _columns_per_piece(input_tensor.element_size(), self.piece_bytes)
        if shard <= step:
            dist.reduce_scatter_single(output=output_tensor, input=input_tensor, op=op, group=group)
            return None
        rows = input_tensor.view(world_size, shard)
        for start in range(0, shard, step):
            stop = min(shard, start + step)
            # (world_size, n) block -> contiguous, rank-major as reduce_scatter_tensor wants it
            piece = rows[:, start:stop].contiguous().view(-1)
            dist.reduce_scatter_single(output=output_tensor[start:stop], input=piece, op=op, group=group)
        return None


def stages_whole_buffers(group: dist.ProcessGroup | None = None) -> bool:
    """True where FSDP2's default collectives copy the whole buffer first (gloo)."""
    return dist.is_initialized() and dist.get_backend(group) == "gloo"
