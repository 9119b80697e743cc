"""Real-time chunking (RTC): the light part shared by executors, policies and models.

`RTCPrefix` is what a chunk executor knows when it asks for the next chunk (robot units);
`vla_core.models.rtc_guidance` turns it into guidance for a flow sampler and holds the math.
Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from vla_core.errors import VLAError

PrefixAttentionSchedule = Literal["zeros", "ones", "linear", "exp"]
SCHEDULES: tuple[str, ...] = ("zeros", "ones", "linear", "exp")


class RTCError(VLAError):
    """Real-time chunking was asked of a model that cannot do it, or with impossible settings."""


@dataclass(frozen=True)
class RTCPrefix:
    """An RTC request in robot units (names from Kinetix `realtime_action` / LeRobot `RTCConfig`).

    `Policy.act(observation, rtc=RTCPrefix(...))` normalises it into an `RTCGuidance`.

    Attributes:
        actions: (L, action_dim) the previous chunk's actions for the new chunk's control steps
            0, 1, ..., L-1 (L <= chunk size; the first `inference_delay` are being executed while
            the new chunk is computed).
        inference_delay: d, actions frozen to the previous chunk's (weights 1).
        prefix_attention_horizon: rows from here on ignore the previous chunk (Kinetix:
            chunk_size - execution_horizon, the overlap).
        prefix_attention_schedule: decay of the weights between d and the horizon: zeros, ones,
            linear or exp (Kinetix's eval default).
        max_guidance_weight: beta, the clip of the guidance weight (Kinetix eval default 5).
    """

    actions: Any
    inference_delay: int
    prefix_attention_horizon: int
    prefix_attention_schedule: PrefixAttentionSchedule = "exp"
    max_guidance_weight: float = 5.0


def supports_rtc(model: Any) -> bool:
    """Whether `model` (a VLA or a head) samples with RTC guidance (`predict_action(..., rtc=)`)."""
    return bool(getattr(model, "supports_rtc", False))


def require_rtc(model: Any, name: str | None = None) -> None:
    """RTCError naming the model (and its head) and the execution modes it can use, unless it supports RTC."""
    if supports_rtc(model):
        return
    head = getattr(model, "vla_head", None)
    described = name or (
        f"{type(model).__name__} with head {type(head).__name__}" if head is not None else type(model).__name__
    )
    raise RTCError(
        f"{described} cannot use execution mode 'rtc': real-time chunking needs a flow-matching sampler that "
        "takes guidance (FlowMatchingHead / FlowMatchingInferenceHead, PI0FlowMatching, PI05FlowMatching). Use "
        "'sync', 'naive' or 'ensemble' with this model (every head supports those)."
    )
