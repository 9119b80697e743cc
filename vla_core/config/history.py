"""Run-config check: observation history in the data exactly when the head reads it.

A head that reads a window of frames declares `supports_history = True` (shown by `vla
info`), and so does a VLA that can encode one (LlavaVLA). A dataset class that can give
history says how long it is from its spec alone, with a static
`observation_history_length(spec) -> int` (0 = none). Mismatches fail at `vla config
validate` time, naming both config paths, instead of as a shape error mid-training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vla_core import registry
from vla_core.errors import ConfigError


def check_history_fits_head(model: Mapping[str, Any], data: Mapping[str, Any] | None) -> None:
    """ConfigError when `data` gives observation history and `model.vla_head` cannot read it
    (or the VLA cannot encode it), when the head reads a window (window_size > 1) and the data
    gives none, or when the window and the history differ in length."""
    head = model.get("vla_head")
    if data is None or not isinstance(head, Mapping):
        return
    length_of = getattr(registry.load("datasets", data["type"]), "observation_history_length", None)
    if not callable(length_of):
        return  # a dataset that cannot give history; nothing to compare
    steps = int(length_of(data))
    head_reads = bool(getattr(registry.load("heads", head["type"]), "supports_history", False))
    vla_reads = bool(getattr(registry.load("vlas", model["type"]), "supports_history", False))
    window = head.get("window_size")
    frames = f"{steps} frames of observation history (data.delta_timestamps on its camera and state keys)"
    if steps and not head_reads:
        raise ConfigError(
            f"{head['type']} reads one frame (supports_history is False), but the data gives {frames}. Remove the "
            "observation keys from data.delta_timestamps, or use a head that reads history (e.g. "
            "DeterministicDecoder from vla-heads-roboflamingo).",
            "model.vla_head.type",
        )
    if steps and not vla_reads:
        raise ConfigError(
            f"{model['type']} cannot encode observation history (supports_history is False), but the data gives "
            f"{frames}. Use LlavaVLA, or remove the observation keys from data.delta_timestamps.",
            "model.type",
        )
    if head_reads and isinstance(window, int) and window > 1 and not steps:
        raise ConfigError(
            f"model.vla_head ({head['type']}) reads a window of window_size={window} frames, but the data gives no "
            f"observation history. Add data.delta_timestamps with {window} offsets ending at 0.0 on every camera "
            "and state key (e.g. [-0.2, -0.1, 0.0] at 10 fps for 3 frames), or set window_size to 1.",
            "data.delta_timestamps",
        )
    if head_reads and isinstance(window, int) and steps and window != steps:
        raise ConfigError(
            f"model.vla_head.window_size is {window} but data.delta_timestamps gives {steps} observation offsets; "
            "make them equal (a training window is the data's history).",
            "model.vla_head.window_size",
        )
