"""`PolicyService`: the one place a request becomes actions, whatever the transport.

    service = PolicyService(policy, ObservationSpec.from_policy(policy), metadata)
    session = service.new_session()           # one per connection (= one robot episode stream)
    reply = session.handle(message)           # a decoded request -> a reply dict

A message is either an observation (checked by `ObservationSpec.check` before the model)
or `{"reset": True}`, which starts a new episode. A session owns its episode state: the
noise generator used when a request brings no noise (seeded per episode, so a replayed
episode samples the same actions) and the policy's `reset()` on every new episode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from vla_core.errors import VLAError
from vla_core.rtc import RTCPrefix
from vla_core.serving.checks import ObservationError, ObservationSpec
from vla_core.serving.rtc_wire import RTC_KEY, decode_prefix

logger = logging.getLogger(__name__)
RESET_MESSAGE = {"reset": True}


class PolicyOutputError(VLAError):
    """The policy produced actions a robot must not receive (NaN/inf or the wrong shape)."""


class PolicyService:
    """A policy behind input checks, one model call at a time.

    Args:
        policy: anything with `act(observation, noise=None) -> (T, A)`, optionally `reset()`.
        spec: what the policy accepts (see checks.py).
        metadata: JSON-able facts sent to every client on connect.
        seed: seed of the sampling noise of each session's first episode.
    """

    def __init__(self, policy: Any, spec: ObservationSpec, metadata: Mapping[str, Any] | None = None, seed: int = 0):
        self.policy, self.spec, self.seed = policy, spec, seed
        self.supports_rtc = bool(getattr(policy, "supports_rtc", False))
        self.metadata = {**dict(metadata or {}), **spec.describe(), "reset_message": RESET_MESSAGE,
                         "supports_rtc": self.supports_rtc}
        # The model runs one request at a time: a GPU is never shared by two forward passes and
        # CPU inference already uses every core.
        self.lock = threading.Lock()

    def new_session(self) -> Session:
        return Session(self)

    def reset_policy(self) -> None:
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            with self.lock:
                reset()

    def act(
        self, observation: dict[str, Any], noise: np.ndarray | None, rtc: RTCPrefix | None = None
    ) -> tuple[np.ndarray, float]:
        """Checked observation [, RTC prefix] -> (actions (T, A) float32, model milliseconds);
        PolicyOutputError if unusable."""
        extra: dict[str, Any] = {} if rtc is None else {"rtc": rtc}
        with self.lock:
            start = time.perf_counter()
            if noise is None:
                actions = self.policy.act(observation, **extra)
            else:
                actions = self.policy.act(observation, noise=torch.from_numpy(noise), **extra)
            model_ms = (time.perf_counter() - start) * 1000
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2:
            raise PolicyOutputError(f"the policy returned actions of shape {actions.shape}; expected (T, action_dim).")
        if not np.isfinite(actions).all():
            # Never send these to a robot: report instead (a diverged model or an unchecked input).
            raise PolicyOutputError(
                "the policy produced NaN or inf actions for this observation; none were sent. The inputs passed "
                "the checks, so the model itself is unstable here (check the checkpoint and its statistics)."
            )
        return actions, model_ms


class Session:
    """One connection's episode state.

    A new session starts a new episode (the policy's `reset()`); so does a reset message.
    """

    def __init__(self, service: PolicyService) -> None:
        self.service = service
        self.episode = -1
        self.requests = 0
        self.generator = torch.Generator()
        self.start_episode()

    def start_episode(self) -> None:
        self.episode += 1
        # Episode e of any session samples the same noise: reproducible replays, no shared RNG.
        self.generator.manual_seed(self.service.seed * 1_000_003 + self.episode)
        self.service.reset_policy()

    def handle(self, message: Any) -> dict[str, Any]:
        """A decoded request -> a reply: `{"actions", "policy_timing"}` or a reset acknowledgement.

        Raises ObservationError / PolicyOutputError (the client's or the model's problem, both
        reported to the client) or whatever the policy raises."""
        if isinstance(message, Mapping) and dict(message) == RESET_MESSAGE:
            self.start_episode()
            return {"reset": True, "episode": self.episode}
        rtc = None
        if isinstance(message, Mapping) and RTC_KEY in message:
            message = dict(message)
            rtc = self._rtc(message.pop(RTC_KEY))
        observation, noise = self.service.spec.check(message)
        if noise is None and self.service.spec.noise_shape is not None:
            noise = torch.randn(self.service.spec.noise_shape, generator=self.generator).numpy()
        actions, model_ms = self.service.act(observation, noise, rtc)
        self.requests += 1
        return {"actions": actions, "policy_timing": {"infer_ms": model_ms}}

    def _rtc(self, value: Any) -> RTCPrefix:
        """The request's `rtc` entry, checked; refused when the model has no guided sampler."""
        if not self.service.supports_rtc:
            vla = getattr(self.service.policy, "vla", None)
            name = type(vla).__name__ if vla is not None else type(self.service.policy).__name__
            head = getattr(vla, "vla_head", None)
            raise ObservationError(
                f"this server's model ({name}{f' with head {type(head).__name__}' if head is not None else ''}) cannot "
                "sample with an 'rtc' prefix (real-time chunking needs a flow-matching model); drop the key and use "
                "sync, naive or ensemble execution."
            )
        spec = self.service.spec
        chunk = spec.noise_shape[0] if spec.noise_shape else None
        action_dim = getattr(getattr(self.service.policy, "processor", None), "action_dim", None)
        return decode_prefix(value, action_dim, chunk)
