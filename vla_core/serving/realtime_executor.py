"""`RealtimeChunkExecutor`: a robot's control loop that never waits on the model (except in sync).

    policy = Policy.from_pretrained("./runs/quickstart_flow")    # or PolicyClient("ws://robot-server:8000")
    executor = RealtimeChunkExecutor(policy, mode="rtc", execution_horizon=4, inference_delay=2)
    executor.reset()                                # a new episode: the policy's reset(), no chunks
    while running:                                  # at the control rate
        robot.apply(executor.act(robot.observe()))
    executor.close()

A worker thread computes the next chunk from the observation of the step it was requested
at, while `act` keeps returning actions of the chunks already there (mode naive, ensemble,
rtc; see chunk_schedule.py). The delay is measured in control steps (calls to `act`);
mode rtc freezes `inference_delay` actions, or the longest delay of the last
`delay_window` chunks when that is longer (the paper's conservative estimate). When no
chunk has an action for the step (the first of an episode, sync, or a delay longer than
the chunk) `act` waits for the model; `stalls` counts those steps.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from vla_core.rtc import PrefixAttentionSchedule, RTCError, require_rtc
from vla_core.serving.chunk_schedule import ChunkRequest, ChunkSchedule, ExecutionMode


class RealtimeChunkExecutor:
    """Chunked execution of `policy` with inference in a worker thread.

    Args:
        policy: `act(observation, noise=None) -> (T, A)` (a `Policy` or a `PolicyClient`),
            optionally `reset()`; mode rtc needs `act(..., rtc=RTCPrefix)` of a flow-matching
            `Policy` (`supports_rtc`).
        mode: sync, naive, ensemble or rtc.
        execution_horizon: s, control steps between requests.
        inference_delay: d, the expected latency in control steps (rtc's frozen prefix).
        temporal_ensemble_coeff: ACT's k (ensemble).
        prefix_attention_schedule: rtc weights over the overlap.
        max_guidance_weight: rtc guidance clip.
        delay_window: rtc freezes max(inference_delay, the longest of the last delay_window delays).
    """

    def __init__(
        self,
        policy: Any,
        mode: ExecutionMode = "naive",
        execution_horizon: int | None = None,
        inference_delay: int = 0,
        temporal_ensemble_coeff: float = 0.01,
        prefix_attention_schedule: PrefixAttentionSchedule = "exp",
        max_guidance_weight: float = 5.0,
        delay_window: int = 10,
    ) -> None:
        if mode == "rtc":
            if hasattr(policy, "vla"):
                require_rtc(policy.vla)
            elif not getattr(policy, "supports_rtc", False):
                raise RTCError(
                    f"{type(policy).__name__} cannot use execution mode 'rtc' (it takes no previous-chunk guidance); "
                    "run the executor on an in-process flow-matching Policy, or use sync, naive or ensemble."
                )
        self.policy = policy
        self.schedule = ChunkSchedule(
            mode, execution_horizon, inference_delay, temporal_ensemble_coeff, prefix_attention_schedule,
            max_guidance_weight,
        )
        self.planned_delay = inference_delay
        self.delays: deque[int] = deque(maxlen=delay_window)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-chunk")
        self.pending: tuple[ChunkRequest, Future] | None = None
        self.step = 0
        self.stalls = 0

    def reset(self) -> None:
        """A new episode: waits for a chunk in flight, drops every chunk, resets the policy."""
        self._wait_pending(deliver=False)
        self.schedule.reset()
        self.delays.clear()
        self.step = self.stalls = 0
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset()

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """The (A,) action for this control step; `observation` is this step's (used when a chunk is requested)."""
        step = self.step
        if self.pending is not None and self.pending[1].done():
            self._wait_pending(deliver=True)
        if self.pending is None and self.schedule.request_due(step):
            self._submit(observation, step)
        # Wait where nothing can run: sync, the episode's first chunk, a chunk later than planned.
        while not self.schedule.can_act(step) or (self.schedule.mode == "sync" and self.pending is not None):
            if self.pending is None:
                self._submit(observation, step)
            self.stalls += 1
            self._wait_pending(deliver=True)
        self.step += 1
        return self.schedule.action(step)

    def close(self) -> None:
        """Stop the worker (after the chunk in flight)."""
        self.worker.shutdown(wait=True)

    def __enter__(self) -> RealtimeChunkExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def switch_jumps(self) -> list[float]:
        """|a_t - a_(t-1)| (mean over action dims) at every chunk switch of this episode."""
        return self.schedule.switch_jumps

    def _submit(self, observation: dict[str, Any], step: int) -> None:
        if self.schedule.mode == "rtc":
            self.schedule.inference_delay = max([self.planned_delay, *self.delays])
        request = self.schedule.request(step)
        if request.rtc is None:
            future = self.worker.submit(self.policy.act, observation)
        else:
            future = self.worker.submit(self.policy.act, observation, rtc=request.rtc)
        self.pending = (request, future)

    def _wait_pending(self, deliver: bool) -> None:
        if self.pending is None:
            return
        request, future = self.pending
        self.pending = None
        actions = future.result()  # re-raises the policy's error in the control thread
        if deliver:
            # Usable from this step on: the steps since the request ran the previous chunk.
            self.delays.append(self.step - request.step)
            self.schedule.deliver(np.asarray(actions, dtype=np.float32), request, self.step, strict=False)
