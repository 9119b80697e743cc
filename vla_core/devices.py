"""Checking a device the user asked for (`--device cuda:1`) before anything is loaded onto it."""

from __future__ import annotations

from typing import Any

from vla_core.errors import ConfigError, ResourceError


def resolve_device(device: Any, flag: str = "--device") -> Any:
    """`device` (a string or torch.device) -> torch.device, if this machine has it.

    A malformed name is a ConfigError (exit 2); a device this machine lacks (no CUDA, a GPU
    index past the last one) a ResourceError (exit 1). torch itself would only fail later,
    deep inside `.to()`, with a message that names neither the flag nor the fix.
    """
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{flag} '{device}' is not a device name; use cpu, cuda, cuda:1 or mps.") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ResourceError(
                f"{flag} {device}: CUDA is not available here (no GPU, no driver, or a CPU-only torch build). "
                f"Use {flag} cpu, or run on a machine with a GPU."
            )
        if resolved.index is not None and resolved.index >= count:
            raise ResourceError(
                f"{flag} {device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}. Pick one of those."
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ResourceError(f"{flag} {device}: Apple's MPS backend is not available here. Use {flag} cpu.")
    return resolved
