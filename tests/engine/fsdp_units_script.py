"""Run under torchrun with 2 processes (gloo): checks of `vla_core.engine.fsdp`'s own units
and `gloo_collectives`, written per rank to `OUT.rank<r>.json` for
`test_fsdp_units.py` to assert on.

    python -m torch.distributed.run --standalone --nproc_per_node=2 fsdp_units_script.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor

from vla_core.engine.distributed import DistributedContext
from vla_core.engine.fsdp import large_modules_outside, shard_model
from vla_core.engine.gloo_collectives import PiecewiseAllGather, PiecewiseReduceScatter
from vla_core.engine.host_memory import release_freed_tensor_memory


def peak_rise_mib(fn) -> float:
    """How far `fn()` raises this process's peak RSS above its RSS before the call, MiB."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    fn()
    return (_status("VmHWM") - before) / 1024


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def collectives_match(group: dist.ProcessGroup, rank: int) -> dict[str, bool]:
    """Piecewise all-gather / reduce-scatter (8 columns per gloo call, a shard of 1001
    elements: 126 calls, the last one short) give exactly what gloo's whole-buffer calls give."""
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        generator = torch.Generator().manual_seed(rank)
        shard = torch.randn(1001, generator=generator).to(dtype)
        expected, got = torch.empty(2 * 1001, dtype=dtype), torch.full((2 * 1001,), float("nan"), dtype=dtype)
        dist.all_gather_single(expected, shard, group=group)
        PiecewiseAllGather(piece_bytes=8 * shard.element_size())(got, shard, group)
        results[f"all_gather {dtype}"] = torch.equal(expected, got)

        full = torch.randn(2 * 1001, generator=generator).to(dtype)
        expected, got = torch.empty(1001, dtype=dtype), torch.full((1001,), float("nan"), dtype=dtype)
        dist.reduce_scatter_single(output=expected, input=full.clone(), op=dist.ReduceOp.SUM, group=group)
        PiecewiseReduceScatter(piece_bytes=8 * full.element_size())(got, full.clone(), group, dist.ReduceOp.SUM)
        results[f"reduce_scatter {dtype}"] = torch.equal(expected, got)
    return results


def collective_peaks(group: dist.ProcessGroup) -> dict[str, float]:
    """Peak RSS rise of a reduce-scatter of a 64 MiB buffer, gloo's own call and ours."""
    full = torch.ones(16 << 20)
    out = torch.zeros(8 << 20)
    return {
        "gloo": peak_rise_mib(lambda: dist.reduce_scatter_single(output=out, input=full, group=group)),
        "piecewise": peak_rise_mib(lambda: PiecewiseReduceScatter()(out, full, group, dist.ReduceOp.SUM)),
    }


class Block(nn.Module):
    """A layer unit of the toy model."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


class Toy(nn.Module):
    """A VLA's shape in small: a vision stack that runs before the token embedding in
    forward (so its backward runs after the embedding's), an embedding, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.vision = nn.Sequential(Block(), Block())
        self.embed = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """pixels (B, T, 16), ids (B, L) -> loss ()."""
        tokens = torch.cat([self.vision(pixels), self.embed(ids)], dim=1)
        return self.head(tokens).pow(2).mean()


def early_reduce(context: DistributedContext) -> dict[str, object]:
    """Shard the toy model; check the embedding's gradient is reduce-scattered before the
    vision stack's backward (not at the end), and every gradient equals one process's."""
    torch.manual_seed(0)
    reference = Toy()
    pixels, ids = torch.randn(4, 5, 16), torch.randint(0, 50, (4, 7))
    reference(pixels, ids).backward()

    torch.manual_seed(0)
    model = Toy()
    own_units = large_modules_outside(model, list(model.vision))
    chosen = [name for name, module in model.named_modules() if module in own_units]
    shard_model(model, {Block}, context)
    seen = {}

    def first_block_backward(module: nn.Module, grad_output: tuple) -> None:
        # Reduced: the module holds its shard again (a DTensor), with its sharded gradient;
        # not yet: the unsharded weight (a plain tensor), its unsharded gradient on it.
        weight = model.embed.weight
        seen["embedding gradient reduced before the vision backward"] = (
            isinstance(weight, DTensor) and weight.grad is not None)

    model.vision[0].register_full_backward_pre_hook(first_block_backward)
    for _ in range(2):  # the second step runs with the hooks set on the first
        model.zero_grad(set_to_none=True)
        model(pixels, ids).backward()  # same batch on both ranks: the averaged gradient is one process's
    mismatched = []
    for (name, param), (_, expected) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        if not torch.allclose(param.grad.full_tensor(), expected.grad, atol=1e-6, rtol=1e-5):
            mismatched.append(name)
    return {"own units": chosen, **seen, "mismatched gradients": mismatched}


def main() -> None:
    release_freed_tensor_memory()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    context = DistributedContext(rank=rank, world_size=2, local_rank=rank, backend="gloo", local_world_size=2)
    group = dist.group.WORLD
    result = {"match": collectives_match(group, rank), "peak_mib": collective_peaks(group), **early_reduce(context)}
    Path(f"{sys.argv[1]}.rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
