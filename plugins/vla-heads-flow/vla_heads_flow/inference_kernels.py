"""What the fast inference path derives from the weights alone, once.

`HeadKernels.build(head)` packs every transformer linear (fused q/k/v for self-attention,
fused k/v for cross-attention, tanh-GELU fused into the first feed-forward projection)
and keeps a `signature` of the parameters (storage and version counter), so the cache is
rebuilt when the weights are loaded, moved or trained. `time_table(num_steps)` holds
everything that depends only on the (deterministic) Euler time grid: the AdaLN
scale/shift of every block and of the output norm, and the action encoder's time
encoding, per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from vla_core.models.packed_linear import PackedLinear
from vla_heads_flow.action_encoder import sinusoidal_encoding
from vla_heads_flow.dit import BasicTransformerBlock
from vla_heads_flow.embodiment import CategorySpecificLinear

if TYPE_CHECKING:
    from vla_heads_flow.flow_matching_head import FlowMatchingHead


def parameter_signature(module: nn.Module) -> tuple:
    """Changes whenever a parameter is replaced, moved, cast or modified in place."""
    return tuple((p.data_ptr(), _version(p), p.dtype, p.device) for p in module.parameters())


def _version(tensor: torch.Tensor) -> int:
    """The in-place version counter; inference-mode tensors have none (and cannot be
    modified outside inference mode)."""
    try:
        return tensor._version
    except RuntimeError:
        return -1


@dataclass
class BlockKernels:
    """Packed linears of one transformer block and its norm settings."""

    self_attention: bool
    heads: int
    q: PackedLinear | None  # cross-attention: queries from the tokens
    kv: PackedLinear | None  # cross-attention: keys and values from the backbone features (once per call)
    qkv: PackedLinear | None  # self-attention: fused queries, keys, values
    out: PackedLinear
    ff_in: PackedLinear  # includes the tanh-GELU
    ff_out: PackedLinear
    norm1: nn.LayerNorm | None  # affine pre-norm of vl_self_attention blocks (DiT blocks use AdaLN)
    norm3: nn.LayerNorm
    ada_eps: float

    @classmethod
    def of(cls, block: BasicTransformerBlock, pack: bool) -> BlockKernels:
        attn = block.attn1
        cross = attn.is_cross_attention
        ada_norm = block.norm_type == "ada_norm"
        return cls(
            self_attention=not cross,
            heads=attn.heads,
            q=PackedLinear.of(attn.to_q, pack=pack) if cross else None,
            kv=PackedLinear.concat([attn.to_k, attn.to_v], pack=pack) if cross else None,
            qkv=None if cross else PackedLinear.concat([attn.to_q, attn.to_k, attn.to_v], pack=pack),
            out=PackedLinear.of(attn.to_out[0], pack=pack),
            ff_in=PackedLinear.of(block.ff.net[0].proj, gelu=True, pack=pack),
            ff_out=PackedLinear.of(block.ff.net[2], pack=pack),
            norm1=None if ada_norm else block.norm1,
            norm3=block.norm3,
            ada_eps=block.norm1.norm.eps if ada_norm else 0.0,
        )


@dataclass
class EmbodimentLinear:
    """A per-embodiment linear of the encoder/decoder for one call: packed (every row of
    the batch has the same embodiment) or batched weights (B, in, out) and bias (B, 1, out)."""

    packed: PackedLinear | None = None
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, in) -> (B, T, out)."""
        if self.packed is not None:
            return self.packed(x)
        assert self.weight is not None
        out = torch.bmm(x, self.weight)
        return out if self.bias is None else out + self.bias


def embodiment_linear(
    layer: CategorySpecificLinear,
    ids: torch.Tensor,
    uniform: int | None,
    pack: bool,
    rows: slice = slice(None),
    bias: bool = True,
) -> EmbodimentLinear:
    """The linear of `layer` for this batch; `rows` selects input rows of W (e.g. the action
    half of the action encoder's W2), `bias=False` leaves the bias out."""
    if uniform is not None:
        weight = layer.W[uniform, rows].t().contiguous()
        return EmbodimentLinear(packed=PackedLinear(weight, layer.b[uniform] if bias else None, pack=pack))
    return EmbodimentLinear(weight=layer.W[ids][:, rows], bias=layer.b[ids].unsqueeze(1) if bias else None)


@dataclass
class EmbodimentKernels:
    """The action encoder's and decoder's linears for one call's embodiments."""

    w1: EmbodimentLinear
    w2a: EmbodimentLinear  # the action half of W2, without bias (the time half and bias are in `tau`)
    w3: EmbodimentLinear
    dec1: EmbodimentLinear
    dec2: EmbodimentLinear

    @classmethod
    def of(cls, head: FlowMatchingHead, ids: torch.Tensor, uniform: int | None, pack: bool) -> EmbodimentKernels:
        encoder, decoder = head.action_encoder, head.action_decoder
        width = head.input_embedding_dim
        return cls(
            w1=embodiment_linear(encoder.W1, ids, uniform, pack),
            w2a=embodiment_linear(encoder.W2, ids, uniform, pack, rows=slice(0, width), bias=False),
            w3=embodiment_linear(encoder.W3, ids, uniform, pack),
            dec1=embodiment_linear(decoder.layer1, ids, uniform, pack),
            dec2=embodiment_linear(decoder.layer2, ids, uniform, pack),
        )


@dataclass
class TimeTable:
    """Per Euler step k (lists of N tensors, one contiguous tensor per step so a compiled
    step sees the same strides every time)."""

    buckets: list[int]
    block_mods: list[torch.Tensor]  # (L, 2, D): AdaLN (1 + scale, shift) of each DiT block
    out_mods: list[torch.Tensor]  # (2, D): output norm (1 + scale, shift)
    tau: list[torch.Tensor]  # (w,): the action encoder's sinusoidal time encoding


@dataclass
class HeadKernels:
    """Everything the fast path derives from the weights; rebuilt when `signature` changes."""

    signature: tuple
    dit_blocks: list[BlockKernels]
    vl_blocks: list[BlockKernels]
    proj_out_2: PackedLinear
    pack: bool = True
    time_tables: dict[int, TimeTable] = field(default_factory=dict)
    embodiments: dict[int, EmbodimentKernels] = field(default_factory=dict)

    @classmethod
    def build(cls, head: FlowMatchingHead, pack: bool) -> HeadKernels:
        with torch.no_grad():
            vl_blocks = head.vl_self_attention.transformer_blocks if head.vl_self_attention is not None else []
            return cls(
                signature=parameter_signature(head),
                dit_blocks=[BlockKernels.of(b, pack) for b in head.model.transformer_blocks],
                vl_blocks=[BlockKernels.of(b, pack) for b in vl_blocks],
                proj_out_2=PackedLinear.of(head.model.proj_out_2, pack=pack),
                pack=pack,
            )

    def embodiment_kernels(self, head: FlowMatchingHead, ids: torch.Tensor, uniform: int | None) -> EmbodimentKernels:
        """Encoder/decoder linears for these ids; packed and kept when the whole batch shares
        one embodiment (the usual inference case), gathered per row otherwise."""
        if uniform is None:
            return EmbodimentKernels.of(head, ids, None, self.pack)
        if uniform not in self.embodiments:
            with torch.no_grad():
                self.embodiments[uniform] = EmbodimentKernels.of(head, ids, uniform, self.pack)
        return self.embodiments[uniform]

    def time_table(self, head: FlowMatchingHead, num_steps: int) -> TimeTable:
        """The AdaLN modulations and time encodings of the Euler grid t_k = k / num_steps."""
        if num_steps in self.time_tables:
            return self.time_tables[num_steps]
        buckets = [int(k / float(num_steps) * head.num_timestep_buckets) for k in range(num_steps)]
        device = head.future_tokens.weight.device
        dit = head.model
        block_mods, out_mods, tau = [], [], []
        with torch.no_grad():
            for bucket in buckets:
                temb = dit.timestep_encoder(torch.tensor([bucket], device=device))  # (1, D)
                mods = [_affine(*block.norm1.modulation(temb)) for block in dit.transformer_blocks]
                block_mods.append(torch.stack(mods).contiguous() if mods else temb.new_zeros(0, 2, temb.shape[-1]))
                shift, scale = dit.output_modulation(temb)
                out_mods.append(_affine(scale, shift).contiguous())
                encoding = sinusoidal_encoding(torch.tensor([bucket], device=device), head.input_embedding_dim)
                tau.append(encoding[0].to(temb.dtype).contiguous())
        table = TimeTable(buckets, block_mods, out_mods, tau)
        self.time_tables[num_steps] = table
        return table


def _affine(scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """AdaLN's modulation as LayerNorm affine parameters: (1, D), (1, D) -> (2, D) = [1 + scale, shift]."""
    return torch.cat([1 + scale, shift])
