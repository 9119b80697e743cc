"""Linear layers with weights packed once for oneDNN, for inference on CPU.

On x86 CPUs torch's default fp32 `F.linear` goes through MKL, which on some CPUs (AMD
EPYC here) runs 2-4x below what oneDNN reaches with a weight reordered into its blocked
layout once (what torch.compile's "freezing" and IPEX do). Two ways to use it:

* `PackedLinear(weight, bias)`: a callable holding a packed copy of one weight (or of
  several concatenated ones, `PackedLinear.concat`), for code that owns its inference
  kernels;
* `with packed_linears(model):` routes every large enough `nn.Linear` of an existing
  model through a cached packed copy of its weight while inference runs inside the block
  (grad disabled), without touching parameters, names or state dicts.

A bf16 weight is packed in bf16 where oneDNN has bf16 kernels for this CPU (AMX,
AVX512) and as an fp32 copy elsewhere (AVX2-only CPUs refuse bf16 packing): the call
then computes in fp32 and returns bf16. Elsewhere (CUDA, builds without oneDNN, small
layers) both are plain `F.linear`. Under
torch.compile the packed call goes through the custom op `vla_core::packed_linear`, so
inductor treats it as an opaque kernel and fuses the elementwise work around it.
"""

from __future__ import annotations

import functools
import threading
import types
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.precision import bf16_kernels_available

#: Below this many weights a oneDNN call's fixed cost (~15 us) outweighs its faster matmul.
#: Read at call time, so tests may lower it to exercise packing on tiny models.
PACK_MIN_NUMEL = 256 * 256


@functools.cache
def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's packed linear ops (checked once)."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def can_pack(weight: torch.Tensor, min_numel: int | None = None) -> bool:
    """Whether packing this weight is available (a plain CPU tensor, fp32/bf16, oneDNN) and
    worth it (at least `min_numel` elements, PACK_MIN_NUMEL by default)."""
    return (
        weight.numel() >= (PACK_MIN_NUMEL if min_numel is None else min_numel)
        and type(weight) in (torch.Tensor, nn.Parameter)  # not a DTensor / quantised subclass
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and weight.ndim == 2
        and onednn_linear_available()
    )


def packing_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a weight of `dtype` is packed (and computed) in: bf16 only where oneDNN
    has bf16 kernels on this CPU, fp32 otherwise."""
    if dtype == torch.bfloat16 and not bf16_kernels_available():
        return torch.float32
    return dtype


@torch.library.custom_op("vla_core::packed_linear", mutates_args=())
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

    Holds detached tensors (not parameters): whoever keeps one must rebuild it when the
    source weights change (`tensor_signature` tells). `gelu=True` fuses the tanh-approximate
    GELU into the kernel. Inputs must have the weight's dtype; outputs have it too, even
    where a bf16 weight is computed in fp32 (`packing_dtype`).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        gelu: bool = False,
        pack: bool = True,
        min_numel: int | None = None,
    ) -> None:
        """weight (out, in); bias (out,) or None; pack: use oneDNN when `can_pack(weight, min_numel)`.

        Once packed, the unpacked weight is not kept (it may be a concatenated copy)."""
        weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.out_features, self.in_features = int(weight.shape[0]), int(weight.shape[1])
        self.gelu = gelu
        packable = pack and can_pack(weight, min_numel)
        self.compute_dtype = packing_dtype(weight.dtype) if packable else weight.dtype
        if packable and self.compute_dtype != weight.dtype:
            weight = weight.to(self.compute_dtype)
            self.bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, None) if packable else None
        self.weight = None if packable else weight

    @classmethod
    def of(cls, linear: nn.Linear, gelu: bool = False, pack: bool = True, min_numel: int | None = None) -> PackedLinear:
        return cls(linear.weight, linear.bias, gelu, pack, min_numel)

    @classmethod
    def concat(cls, linears: list[nn.Linear], pack: bool = True, min_numel: int | None = None) -> PackedLinear:
        """One kernel for several linears reading the same input (e.g. fused q/k/v): outputs
        are concatenated along the last dim."""
        weight = torch.cat([lin.weight.detach() for lin in linears], dim=0)
        biases = [lin.bias for lin in linears]
        bias = None if any(b is None for b in biases) else torch.cat([b.detach() for b in biases])  # type: ignore[union-attr]
        return cls(weight, bias, False, pack, min_numel)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)."""
        if self.packed is None:
            assert self.weight is not None
            y = F.linear(x, self.weight, self.bias)
            return F.gelu(y, approximate="tanh") if self.gelu else y
        out_dtype = x.dtype
        x = x.to(self.compute_dtype)  # a no-op unless a bf16 weight is computed in fp32
        if torch.compiler.is_compiling():
            y = packed_linear_op(x, self.packed, self.bias, self.out_features, self.gelu)
        elif self.gelu:
            y = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "tanh")
        else:
            y = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return y.to(out_dtype)


def tensor_signature(tensor: torch.Tensor | None) -> tuple | None:
    """Changes whenever the tensor is replaced, moved, cast or modified in place; None for
    None. Inference-mode tensors have no version counter: their entry is -1."""
    if tensor is None:
        return None
    try:
        version = tensor._version
    except RuntimeError:
        version = -1
    return (tensor.data_ptr(), version, tensor.dtype, tensor.device, tuple(tensor.shape))


class _CacheEntry(NamedTuple):
    signature: tuple
    linear: PackedLinear


# Keyed by the module (weakly: a cache entry dies with its layer), never stored on it, so
# state dicts, deepcopy and pickling of the model never see the opaque packed tensors.
_PACKED_CACHE: weakref.WeakKeyDictionary[nn.Linear, _CacheEntry] = weakref.WeakKeyDictionary()
# How many open `packed_linears` blocks route each layer (blocks may nest or overlap).
_ROUTED: weakref.WeakKeyDictionary[nn.Linear, int] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def packed_weight_of(linear: nn.Linear) -> PackedLinear | None:
    """The cached packed copy of `linear`'s weight and bias, rebuilt if either changed
    (another tensor, another dtype or device, an in-place update, `load_state_dict`); None
    when the weight cannot be packed or has no version counter to detect in-place updates."""
    weight, bias = linear.weight, linear.bias
    signature = (tensor_signature(weight), tensor_signature(bias))
    if signature[0][1] == -1 or (signature[1] is not None and signature[1][1] == -1):  # type: ignore[index]
        return None
    entry = _PACKED_CACHE.get(linear)
    if entry is None or entry.signature != signature:
        if not can_pack(weight, 0):
            return None
        with torch.no_grad():
            entry = _CacheEntry(signature, PackedLinear(weight, bias, min_numel=0))
        _PACKED_CACHE[linear] = entry
    return entry.linear


def _packed_forward(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """What a routed `nn.Linear` runs: the packed kernel in CPU inference, `F.linear` otherwise."""
    weight = linear.weight
    if (
        torch.is_grad_enabled()
        or x.dtype != weight.dtype
        or x.device.type != "cpu"
        or torch.is_autocast_enabled("cpu")
        or torch.compiler.is_compiling()
    ):
        return F.linear(x, weight, linear.bias)
    packed = packed_weight_of(linear)
    return F.linear(x, weight, linear.bias) if packed is None else packed(x)


def routable_linears(module: nn.Module, min_numel: int | None = None) -> list[nn.Linear]:
    """The `nn.Linear` layers of `module` (itself included) that `packed_linears` routes:
    `nn.Linear` or a subclass that keeps its `forward` (one that overrides it may compute
    something else), a packable weight, and no `forward` already replaced on the instance
    by someone else."""
    found: dict[int, nn.Linear] = {}
    stack = [module]
    while stack:  # module.modules() without its recursive generators: this runs on every call
        m = stack.pop()
        if (
            isinstance(m, nn.Linear)
            and type(m).forward is nn.Linear.forward
            and can_pack(m.weight, min_numel)
            and ("forward" not in m.__dict__ or m in _ROUTED)
        ):
            found[id(m)] = m  # a layer shared by two parents is routed once
        stack.extend(child for child in m._modules.values() if child is not None)
    return list(found.values())


@contextmanager
def packed_linears(module: nn.Module, enabled: bool = True, min_numel: int | None = None) -> Iterator[int]:
    """Run `module`'s large `nn.Linear` layers through packed oneDNN kernels inside the block.

    Every routed layer (see `routable_linears`; at least `min_numel` weights, PACK_MIN_NUMEL
    by default) computes `F.linear(x, weight, bias)` with a packed copy of its weight when
    grad is disabled, the input is on the CPU with the weight's dtype and no autocast is
    active; otherwise it runs unchanged. The packed copy (a second copy of the weight in
    memory) is built on first use and kept for the next block while the weight and bias
    are unchanged (same tensors, same version counter): in-place updates, `load_state_dict`,
    `.to()` and training between blocks rebuild it. Parameters, their names and state dicts
    are untouched. Results equal `F.linear`'s to float rounding (~1e-6 relative in fp32).

    Yields the number of routed layers (0 when `enabled` is False).
    """
    layers = routable_linears(module, min_numel) if enabled else []
    with _LOCK:
        for layer in layers:
            count = _ROUTED.get(layer, 0)
            if count == 0:
                layer.forward = types.MethodType(_packed_forward, layer)  # type: ignore[method-assign]
            _ROUTED[layer] = count + 1
    try:
        yield len(layers)
    finally:
        with _LOCK:
            for layer in layers:
                count = _ROUTED[layer] - 1
                if count == 0:
                    del layer.__dict__["forward"]
                    del _ROUTED[layer]
                else:
                    _ROUTED[layer] = count
