"""Numeric precision chosen from what the hardware computes natively.

`precision: auto` (the default of training and of every inference command) resolves to
bf16 only where the device has bf16 arithmetic in silicon, and to fp32 everywhere else:

* CUDA: `torch.cuda.is_bf16_supported(including_emulation=False)` (Ampere and newer);
* x86 CPUs: AMX-BF16 or AVX512-BF16, as torch's own cpuinfo probe reports them
  (`torch._C._cpu._get_cpu_capability()`); without them oneDNN emulates bf16 (AVX512
  without BF16) or torch falls back to scalar conversion loops (AVX2), 2-6x slower than
  fp32 (docs/benchmarks.md);
* other CPUs (e.g. aarch64): oneDNN's own answer (`torch.ops.mkldnn._is_mkldnn_bf16_supported`);
* anything else (MPS, ...): fp32.

An explicit `bf16` is honoured everywhere, with a one-line warning where it is emulated.
Packed oneDNN weights (`vla_core.models.packed_linear`) ask `bf16_kernels_available()`:
whether oneDNN can run bf16 kernels at all, native or emulated.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

#: torch cpuinfo flags that mean bf16 matrix arithmetic in hardware on x86.
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: Vector extensions shown when describing a CPU (most capable first).
VECTOR_FLAGS = ("amx_bf16", "amx_fp16", "amx_int8", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx512_bw",
                "avx512_vl", "avx512_dq", "avx512_f", "avx_ne_convert", "avx_vnni", "avx2", "fma3", "avx")


@functools.cache
def cpu_capability() -> dict[str, Any]:
    """torch's cpuinfo report ({'avx2': True, 'amx_bf16': False, 'cpu_name': ..., ...});
    empty where this torch build does not expose it."""
    probe = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    if probe is None:
        return {}
    try:
        return dict(probe())
    except RuntimeError:  # cpuinfo could not read the CPU
        return {}


def describe_cpu() -> str:
    """'AMD EPYC (x86_64): avx2 fma3 avx' — the CPU model and its vector extensions."""
    info = cpu_capability()
    flags = [flag for flag in VECTOR_FLAGS if info.get(flag)]
    name = info.get("cpu_name") or "unknown CPU"
    arch = info.get("architecture") or "unknown architecture"
    return f"{name} ({arch}): {' '.join(flags) if flags else 'no vector extensions reported'}"


def bf16_kernels_available() -> bool:
    """Whether oneDNN runs bf16 kernels on this CPU (natively or emulated on AVX512); on
    AVX2-only CPUs it refuses them (e.g. packing a bf16 weight raises)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, a short reason naming the hardware)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{name} computes bf16 natively"
        return False, f"{name} has no native bf16 (needs compute capability 8.0 or newer)"
    if device.type != "cpu":
        return False, f"bf16 is not chosen automatically on '{device.type}'"
    info = cpu_capability()
    name = info.get("cpu_name") or "this CPU"
    if info.get("architecture") in ("x86_64", "x86", "i386", "AMD64"):
        found = [flag for flag in NATIVE_BF16_CPU_FLAGS if info.get(flag)]
        if found:
            return True, f"{name} has {'/'.join(found).upper()}"
        return False, f"{name} has no AMX-BF16 or AVX512-BF16, so bf16 is emulated"
    if bf16_kernels_available():
        return True, f"oneDNN runs bf16 on {name}"
    return False, f"oneDNN has no bf16 kernels on {name}"


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run computes in: `resolved` is "fp32" or "bf16"; `warning` is set when an
    explicit bf16 will be emulated (slow)."""

    requested: str
    resolved: str
    device: str
    reason: str
    warning: str | None = None

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.resolved == "bf16" else torch.float32

    def describe(self) -> str:
        """One line: 'precision fp32 (auto: AMD EPYC has no AMX-BF16 or AVX512-BF16, ...)'."""
        how = "auto" if self.requested == "auto" else "as configured"
        return f"precision {self.resolved} ({how}: {self.reason})"

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the device when resolved to bf16; a no-op for fp32."""
        if self.resolved == "bf16":
            return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def as_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "resolved": self.resolved, "device": self.device, "reason": self.reason}


def resolve_precision(requested: str, device: torch.device | str) -> PrecisionChoice:
    """`auto` -> bf16 where `device` computes it natively, else fp32; `fp32`/`bf16` as asked
    (bf16 where it is emulated gets a warning). Raises ConfigError for another name."""
    if requested not in PRECISIONS:
        from vla_core.errors import ConfigError

        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}.", "precision")
    device = torch.device(device)
    native, reason = native_bf16(device)
    if requested == "auto":
        return PrecisionChoice(requested, "bf16" if native else "fp32", str(device), reason)
    if requested == "bf16" and not native:
        warning = (f"precision bf16 on {device.type}: {reason}; bf16 will run several times slower than fp32 here "
                   "(use precision auto or fp32).")
        return PrecisionChoice(requested, "bf16", str(device), reason, warning)
    return PrecisionChoice(requested, requested, str(device), reason)
