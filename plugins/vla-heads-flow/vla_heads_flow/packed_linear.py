"""A linear layer whose weight is packed once for inference.

On x86 CPUs torch's default fp32 `F.linear` goes through MKL, which on some CPUs (AMD EPYC
here) runs 3-4x below what oneDNN reaches with a weight reordered into its blocked layout
once (what torch.compile's "freezing" and IPEX do). `PackedLinear` packs the weight at
construction and calls oneDNN's linear (with an optional fused tanh-GELU); elsewhere
(CUDA, builds without oneDNN) it is plain `F.linear`.

Under torch.compile the packed call goes through a custom op, so inductor treats it as an
opaque kernel and fuses the elementwise work around it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Below this many weights a oneDNN call's fixed cost (~15 us) outweighs its faster matmul.
PACK_MIN_NUMEL = 256 * 256


def can_pack(weight: torch.Tensor) -> bool:
    """Whether packing this weight is available (CPU, fp32/bf16, oneDNN) and worth it (large enough)."""
    return (
        weight.numel() >= PACK_MIN_NUMEL
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


@torch.library.custom_op("vla_heads_flow::packed_linear", mutates_args=())
def packed_linear_op(
    x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor | None, out_features: int, gelu: bool
) -> torch.Tensor:
    """oneDNN linear with a packed weight: (..., in) -> (..., out_features), tanh-GELU if `gelu`."""
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, packed_weight, bias, "gelu", [], "tanh")
    return torch.ops.mkldnn._linear_pointwise(x, packed_weight, bias, "none", [], "")


@packed_linear_op.register_fake
def _packed_linear_fake(
    x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor | None, out_features: int, gelu: bool
) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], out_features)


class PackedLinear:
    """y = act(x W^T + b) for inference, W packed for oneDNN when possible.

    Holds detached tensors (not parameters): it is rebuilt whenever the source weights
    change. `gelu=True` fuses diffusers' tanh-approximate GELU into the kernel.
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False, pack: bool = True
    ) -> None:
        self.weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.out_features = int(weight.shape[0])
        self.gelu = gelu
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, None) if pack and can_pack(weight) else None

    @classmethod
    def of(cls, linear: nn.Linear, gelu: bool = False, pack: bool = True) -> PackedLinear:
        return cls(linear.weight, linear.bias, gelu, pack)

    @classmethod
    def concat(cls, linears: list[nn.Linear], pack: bool = True) -> PackedLinear:
        """One kernel for several linears reading the same input (e.g. fused q/k/v): outputs
        are concatenated along the last dim."""
        weight = torch.cat([lin.weight.detach() for lin in linears], dim=0)
        biases = [lin.bias for lin in linears]
        bias = None if any(b is None for b in biases) else torch.cat([b.detach() for b in biases])  # type: ignore[union-attr]
        return cls(weight, bias, False, pack)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)."""
        if self.packed is None:
            y = F.linear(x, self.weight, self.bias)
            return F.gelu(y, approximate="tanh") if self.gelu else y
        if torch.compiler.is_compiling():
            return packed_linear_op(x, self.packed, self.bias, self.out_features, self.gelu)
        if self.gelu:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "tanh")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
