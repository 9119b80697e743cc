"""Which action runs at each control step when action chunks arrive late: sync, naive, ensemble, rtc.

A chunk is computed from the observation at control step `start` (its row i is meant for
step start + i) and can only be used from its arrival, `inference_delay` steps later. A new
chunk is requested every `execution_horizon` steps (s). The modes differ in what runs:

* `sync`: the robot waits for every chunk (the world pauses for the delay), then executes
  rows 0 .. s-1. Smooth within a chunk, but it stops d steps per chunk; in simulation its
  success does not depend on d.
* `naive`: keep executing the previous chunk during the delay; switch to the new chunk at its
  arrival, from row d (rows before d are for steps already past).
* `ensemble`: ACT's temporal ensembling (Zhao et al. 2023, `temporal_agg`; lerobot's
  `ACTTemporalEnsembler`): every arrived chunk that covers the step votes, weighted
  exp(-temporal_ensemble_coeff * i) with i = 0 the oldest; works with any head.
* `rtc`: real-time chunking (Black et al. 2025): timed like `naive`, but the new chunk is
  sampled so that it agrees with the previous chunk over the delay and decays toward free
  over the overlap (see vla_core.models.rtc_guidance); `request()` hands the policy that prefix.

Timing follows Kinetix's `eval_flow.py`: one request in flight, d <= s <= T - d (the previous
chunk must last until the next arrives). The first chunk of an episode is waited for in
every mode. This class is deterministic (a step counter, no clock, no threads): `vla eval`
drives it with a simulated delay, `RealtimeChunkExecutor` with a worker thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vla_core.errors import VLAError
from vla_core.rtc import SCHEDULES, PrefixAttentionSchedule, RTCPrefix

ExecutionMode = Literal["sync", "naive", "ensemble", "rtc"]
EXECUTION_MODES: tuple[str, ...] = ("sync", "naive", "ensemble", "rtc")


class ExecutionError(VLAError):
    """Impossible chunk-execution settings (mode, horizons, delay)."""


@dataclass
class ScheduledChunk:
    """A delivered chunk: actions (T, A); row i is for control step start + i; usable from `arrival`."""

    actions: np.ndarray
    start: int
    arrival: int


@dataclass(frozen=True)
class ChunkRequest:
    """A chunk to compute from the observation at control step `step`; `rtc` is the prefix to agree
    with (mode rtc, once a previous chunk exists), else None."""

    step: int
    rtc: RTCPrefix | None = None


@dataclass
class ChunkSchedule:
    """The chunks of one episode and the action of every control step.

    Args:
        mode: sync, naive, ensemble or rtc (see the module docstring).
        execution_horizon: s, control steps between requests (actions executed per chunk);
            None = the whole chunk (sync only).
        inference_delay: d, control steps a chunk takes to arrive (planned; the real-time
            executor may see others); the rtc prefix freezes that many actions.
        temporal_ensemble_coeff: ACT's k in exp(-k * i) (ensemble).
        prefix_attention_schedule: rtc weights over the overlap (Kinetix default "exp").
        max_guidance_weight: rtc's guidance clip beta (Kinetix eval default 5).
    """

    mode: ExecutionMode = "sync"
    execution_horizon: int | None = None
    inference_delay: int = 0
    temporal_ensemble_coeff: float = 0.01
    prefix_attention_schedule: PrefixAttentionSchedule = "exp"
    max_guidance_weight: float = 5.0
    chunks: list[ScheduledChunk] = field(default_factory=list, init=False, repr=False)
    last_request: int | None = field(default=None, init=False)
    last_action: np.ndarray | None = field(default=None, init=False, repr=False)
    last_source: int | None = field(default=None, init=False)
    switch_jumps: list[float] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in EXECUTION_MODES:
            raise ExecutionError(f"execution mode must be one of {', '.join(EXECUTION_MODES)}, got '{self.mode}'.")
        if self.execution_horizon is not None and self.execution_horizon < 1:
            raise ExecutionError(f"execution_horizon (actions per chunk) must be >= 1, got {self.execution_horizon}.")
        if self.inference_delay < 0:
            raise ExecutionError(f"inference_delay (steps) must be >= 0, got {self.inference_delay}.")
        if self.mode != "sync":
            if self.execution_horizon is None:
                raise ExecutionError(
                    f"mode '{self.mode}' needs an execution_horizon (actions executed per chunk, e.g. --execute-steps "
                    "4): the next chunk is requested while the current one still has actions left."
                )
            if self.inference_delay > self.execution_horizon:
                raise ExecutionError(
                    f"inference_delay {self.inference_delay} > execution_horizon {self.execution_horizon}: the next "
                    "chunk would be requested before the previous one arrived. Execute at least as many actions "
                    "per chunk as the delay (Kinetix requires execute_horizon >= inference_delay)."
                )
        if self.temporal_ensemble_coeff < 0:
            raise ExecutionError(f"temporal_ensemble_coeff must be >= 0, got {self.temporal_ensemble_coeff}.")
        if self.prefix_attention_schedule not in SCHEDULES:
            raise ExecutionError(
                f"prefix_attention_schedule must be one of {', '.join(SCHEDULES)}, "
                f"got '{self.prefix_attention_schedule}'."
            )

    def reset(self) -> None:
        """A new episode: no chunks, no requests."""
        self.chunks, self.last_request, self.last_action, self.last_source = [], None, None, None
        self.switch_jumps = []

    # ---- requests -------------------------------------------------------------------------
    def horizon_of(self, chunk: ScheduledChunk) -> int:
        """Actions executed from `chunk` before the next request: s, or the whole chunk (sync, s None)."""
        return len(chunk.actions) if self.execution_horizon is None else min(self.execution_horizon, len(chunk.actions))

    def request_due(self, step: int) -> bool:
        """Whether a chunk should be requested at control step `step`."""
        if self.last_request is None or not self.chunks:
            return True
        return step >= self.last_request + self.horizon_of(self.chunks[-1])

    def request(self, step: int) -> ChunkRequest:
        """Register a request at `step`; in mode rtc it carries the previous chunk's actions for
        the new chunk's steps (its first `inference_delay` are executed while this one computes)."""
        self.last_request = step
        previous = self.chunks[-1] if self.chunks else None
        if self.mode != "rtc" or previous is None:
            return ChunkRequest(step)
        rest = previous.actions[step - previous.start :]
        chunk_size = len(previous.actions)
        prefix = RTCPrefix(
            actions=rest,
            inference_delay=self.inference_delay,
            # Kinetix: prefix_attention_horizon = action_chunk_size - execute_horizon (the overlap).
            prefix_attention_horizon=chunk_size - (self.execution_horizon or chunk_size),
            prefix_attention_schedule=self.prefix_attention_schedule,
            max_guidance_weight=self.max_guidance_weight,
        )
        return ChunkRequest(step, prefix)

    def deliver(self, actions: np.ndarray, request: ChunkRequest, arrival: int, strict: bool = True) -> None:
        """The chunk (T, A) computed for `request`, usable from control step `arrival`. `strict`
        (simulation): ExecutionError unless it covers execution_horizon actions after the planned
        delay; a real-time executor passes False and waits whenever a chunk runs out."""
        actions = np.asarray(actions, dtype=np.float32)
        need = (self.execution_horizon or 1) + self.inference_delay
        if strict and self.mode != "sync" and len(actions) < need:
            raise ExecutionError(
                f"a chunk of {len(actions)} actions cannot cover execution_horizon {self.execution_horizon} after an "
                f"inference delay of {self.inference_delay} steps (needs {need}, Kinetix: execute_horizon <= "
                "chunk_size - inference_delay); lower --execute-steps or the delay."
            )
        self.chunks.append(ScheduledChunk(actions, request.step, arrival))

    # ---- actions ------------------------------------------------------------------------------
    def covering(self, step: int) -> list[ScheduledChunk]:
        """Arrived chunks with a row for `step`, oldest first."""
        return [c for c in self.chunks if c.arrival <= step and 0 <= step - c.start < len(c.actions)]

    def can_act(self, step: int) -> bool:
        """Whether some arrived chunk has an action for `step` (else the robot must wait)."""
        return bool(self.covering(step))

    def action(self, step: int) -> np.ndarray:
        """The (A,) action for control step `step` (call once per step, in order)."""
        chunks = self.covering(step)
        if not chunks:
            raise ExecutionError(
                f"no arrived chunk has an action for control step {step}: the next chunk is late (a delay longer "
                "than the chunk's remaining actions). Wait for it (RealtimeChunkExecutor does) or execute fewer "
                "actions per chunk."
            )
        newest = chunks[-1]
        if self.mode == "ensemble":
            weights = np.exp(-self.temporal_ensemble_coeff * np.arange(len(chunks)))  # i = 0: the oldest chunk
            rows = np.stack([c.actions[step - c.start] for c in chunks])
            action = (weights[:, None] * rows).sum(0) / weights.sum()
        else:
            action = newest.actions[step - newest.start]
        action = np.asarray(action, dtype=np.float32)
        if self.last_source is not None and newest.start != self.last_source and self.last_action is not None:
            self.switch_jumps.append(float(np.abs(action - self.last_action).mean()))
        self.last_action, self.last_source = action, newest.start
        # Chunks that end before this step are never read again.
        self.chunks = [c for c in self.chunks if c.start + len(c.actions) > step or c is newest]
        return action

    def mean_switch_jump(self) -> float:
        """Mean |a_t - a_(t-1)| (over action dims and switches) at the steps where a new chunk took over."""
        return float(np.mean(self.switch_jumps)) if self.switch_jumps else math.nan
