"""The optional `rtc` entry of a request: a real-time-chunking prefix over the wire.

    {"observation/image": ..., "observation/state": ..., "prompt": ...,
     "rtc": {"actions": (L, action_dim) float32, "inference_delay": 2, "prefix_attention_horizon": 4,
             "prefix_attention_schedule": "exp", "max_guidance_weight": 5.0}}

`actions` are the previous chunk's actions (robot units) for the new chunk's steps 0..L-1;
the other fields are `vla_core.rtc.RTCPrefix`'s. A server whose model has no guided sampler
(metadata `supports_rtc: false`) refuses the entry with an error naming the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from vla_core.rtc import SCHEDULES, RTCPrefix
from vla_core.serving.checks import ObservationError

RTC_KEY = "rtc"
FIELDS = ("actions", "inference_delay", "prefix_attention_horizon", "prefix_attention_schedule",
          "max_guidance_weight")


def encode_prefix(prefix: RTCPrefix) -> dict[str, Any]:
    """RTCPrefix -> the request's `rtc` map."""
    return {
        "actions": np.asarray(prefix.actions, dtype=np.float32),
        "inference_delay": int(prefix.inference_delay),
        "prefix_attention_horizon": int(prefix.prefix_attention_horizon),
        "prefix_attention_schedule": str(prefix.prefix_attention_schedule),
        "max_guidance_weight": float(prefix.max_guidance_weight),
    }


def decode_prefix(value: Any, action_dim: int | None, chunk_size: int | None) -> RTCPrefix:
    """The request's `rtc` map -> RTCPrefix; ObservationError naming the field otherwise."""
    if not isinstance(value, Mapping):
        raise ObservationError(f"'rtc' must be a map with {list(FIELDS)}, got {type(value).__name__}.")
    unknown = sorted(str(k) for k in value if k not in FIELDS)
    if unknown or "actions" not in value or "inference_delay" not in value:
        raise ObservationError(
            f"'rtc' takes {list(FIELDS)} (actions and inference_delay required); got {sorted(map(str, value))}."
        )
    actions = value["actions"]
    if not isinstance(actions, np.ndarray) or actions.dtype.kind != "f" or actions.ndim != 2:
        raise ObservationError("'rtc.actions' must be a float (L, action_dim) array of the previous chunk's actions.")
    if (action_dim is not None and actions.shape[1] != action_dim) or (chunk_size and actions.shape[0] > chunk_size):
        raise ObservationError(
            f"'rtc.actions' must be (L <= {chunk_size}, {action_dim}), got {actions.shape}."
        )
    if not np.isfinite(actions).all():
        raise ObservationError("'rtc.actions' holds NaN or inf values.")
    integers = {}
    for name, default in (("inference_delay", None), ("prefix_attention_horizon", len(actions))):
        number = value.get(name, default)
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= (chunk_size or number):
            raise ObservationError(f"'rtc.{name}' must be an integer in [0, {chunk_size}], got {number!r}.")
        integers[name] = number
    schedule = value.get("prefix_attention_schedule", "exp")
    if schedule not in SCHEDULES:
        raise ObservationError(f"'rtc.prefix_attention_schedule' must be one of {list(SCHEDULES)}, got {schedule!r}.")
    weight = value.get("max_guidance_weight", 5.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ObservationError(f"'rtc.max_guidance_weight' must be a finite number >= 0, got {weight!r}.")
    return RTCPrefix(actions.astype(np.float32), integers["inference_delay"], integers["prefix_attention_horizon"],
                     schedule, float(weight))
