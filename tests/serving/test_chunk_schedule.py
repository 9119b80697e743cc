"""Chunk execution under inference delay: which action runs at each step, per mode.

A fake policy returns chunks whose entries encode (request step, row), so every executed
action says which chunk and which row it came from.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from vla_core.envs.rollout import run_episode
from vla_core.envs.spec import CameraSpec, EnvSpec
from vla_core.rtc import RTCError, RTCPrefix
from vla_core.serving.chunk_schedule import ChunkRequest, ChunkSchedule, ExecutionError
from vla_core.serving.realtime_executor import RealtimeChunkExecutor

T = 8


def tagged_chunk(step: int, length: int = T) -> np.ndarray:
    """(length, 1): row i = 100 * request step + i."""
    return (100.0 * step + np.arange(length, dtype=np.float32))[:, None]


class TagEnv:
    """Counts its steps; the observation is the step count."""

    can_skip_render = True

    def __init__(self, max_steps: int = 20) -> None:
        self.spec = EnvSpec(cameras=(CameraSpec("cam", 4, 4),), state_names=("t",), action_names=("a",),
                            action_low=(-1e6,), action_high=(1e6,), fps=10, max_steps=max_steps)

    def reset(self, task: str, seed: int) -> dict:
        self.t = 0
        return {"state": np.array([0.0], np.float32), "task": "tag"}

    def step(self, action: Any, render: bool = True):
        self.t += 1
        return {"state": np.array([self.t], np.float32), "task": "tag"}, False, self.t >= self.spec.max_steps


class TagPolicy:
    """Returns tagged_chunk(observed step); records the rtc prefixes it was given."""

    def __init__(self) -> None:
        self.prefixes: list[RTCPrefix | None] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict_chunk(self, observation: dict, rtc: RTCPrefix | None = None) -> np.ndarray:
        self.prefixes.append(rtc)
        return tagged_chunk(int(observation["state"][0]))

    def require_rtc(self) -> None:
        pass


def executed(mode: str, s: int | None, d: int, steps: int = 14) -> tuple[list[float], Any, TagPolicy]:
    policy = TagPolicy()
    episode = run_episode(TagEnv(steps), policy, "tag", 0, record=True,
                          execution=ChunkSchedule(mode, execution_horizon=s, inference_delay=d))
    return [float(a[0]) for a in episode.actions], episode, policy


def test_sync_waits_and_executes_rows_0_to_s() -> None:
    actions, episode, _ = executed("sync", 4, 3, steps=10)
    assert actions == [0, 1, 2, 3, 400, 401, 402, 403, 800, 801]
    assert episode.wait_steps == 3 * 3  # the world waited d steps for each of the 3 chunks
    assert episode.switch_jumps == [abs(400 - 3), abs(800 - 403)]
    # no schedule = the old open-loop chunking, k actions per chunk
    legacy = run_episode(TagEnv(10), TagPolicy(), "tag", 0, execute_steps=4, record=True)
    assert [float(a[0]) for a in legacy.actions] == actions and legacy.wait_steps == 0


def test_naive_keeps_the_previous_chunk_during_the_delay_then_switches_at_row_d() -> None:
    actions, episode, _ = executed("naive", 4, 2)
    # chunk 0 (waited for), requests at 4, 8, 12 arrive 2 steps later and start at row 2
    assert actions == [0, 1, 2, 3, 4, 5, 402, 403, 404, 405, 802, 803, 804, 805]
    assert episode.wait_steps == 2
    assert episode.switch_jumps == [abs(402 - 5), abs(802 - 405)]
    assert actions == executed("rtc", 4, 2)[0]  # rtc is timed like naive


def test_d0_naive_equals_sync() -> None:
    assert executed("naive", 4, 0)[0] == executed("sync", 4, 0)[0]


def test_ensemble_averages_every_arrived_chunk_with_act_weights() -> None:
    k = 0.01
    actions, _, _ = executed("ensemble", 4, 2, steps=8)
    w_old, w_new = 1.0, np.exp(-k)  # ACT: w_i = exp(-k i), i = 0 the oldest prediction
    assert actions[:6] == [0, 1, 2, 3, 4, 5]  # chunk 4 arrives at step 6
    assert actions[6] == pytest.approx((w_old * 6 + w_new * 402) / (w_old + w_new))
    assert actions[7] == pytest.approx((w_old * 7 + w_new * 403) / (w_old + w_new))


def test_ensemble_weights_of_three_chunks_by_hand() -> None:
    schedule = ChunkSchedule("ensemble", execution_horizon=1, inference_delay=0, temporal_ensemble_coeff=0.5)
    for step, value in enumerate([10.0, 20.0, 40.0]):
        schedule.deliver(np.full((T, 1), value, np.float32), schedule.request(step), step)
        action = schedule.action(step)
    weights = np.exp(-0.5 * np.arange(3))  # [1, e^-0.5, e^-1]: lerobot ACTTemporalEnsembler's weights
    assert action[0] == pytest.approx(float((weights * [10, 20, 40]).sum() / weights.sum()))


def test_rtc_requests_carry_the_previous_chunk_from_the_new_chunks_first_step() -> None:
    _, _, policy = executed("rtc", 4, 2, steps=9)
    assert policy.prefixes[0] is None  # the first chunk has nothing to agree with
    prefix = policy.prefixes[1]
    assert prefix is not None and prefix.inference_delay == 2 and prefix.prefix_attention_horizon == T - 4
    assert prefix.actions[:, 0].tolist() == [4, 5, 6, 7]  # chunk 0's rows for steps 4, 5, ...
    assert [float(a) for a in policy.prefixes[2].actions[:, 0]] == [404, 405, 406, 407]
    assert all(p is None for p in executed("naive", 4, 2)[2].prefixes)


@pytest.mark.parametrize(
    ("mode", "s", "d", "match"),
    [("naive", 2, 3, "inference_delay 3 > execution_horizon 2"), ("rtc", None, 0, "needs an execution_horizon"),
     ("bogus", 4, 0, "one of sync, naive, ensemble, rtc"), ("sync", 0, 0, "must be >= 1")],
)
def test_impossible_settings_are_refused(mode: str, s: int | None, d: int, match: str) -> None:
    with pytest.raises(ExecutionError, match=match):
        ChunkSchedule(mode, execution_horizon=s, inference_delay=d)  # type: ignore[arg-type]


def test_a_chunk_too_short_for_horizon_plus_delay_is_refused() -> None:
    schedule = ChunkSchedule("naive", execution_horizon=6, inference_delay=4)
    with pytest.raises(ExecutionError, match="needs 10"):
        schedule.deliver(tagged_chunk(0), ChunkRequest(0), 0)


def test_rtc_with_a_policy_without_guidance_names_the_modes_it_can_use() -> None:
    class Plain:
        def reset(self) -> None: ...
        def predict_chunk(self, observation: dict) -> np.ndarray:
            return tagged_chunk(0)

    with pytest.raises(RTCError, match=r"Plain cannot use execution mode 'rtc'.*'sync', 'naive' or 'ensemble'"):
        run_episode(TagEnv(), Plain(), "tag", 0, execution=ChunkSchedule("rtc", 4, 2))


class GatedPolicy:
    """`act` blocks until the test opens the gate for that call; chunks are tagged by observation."""

    def __init__(self) -> None:
        self.gates: list[threading.Event] = []
        self.calls: list[dict] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, observation: dict, noise: Any = None, rtc: RTCPrefix | None = None) -> np.ndarray:
        gate = threading.Event()
        self.gates.append(gate)
        self.calls.append({"step": observation["step"], "rtc": rtc})
        assert gate.wait(10), "the test never opened the gate"
        return tagged_chunk(observation["step"])


def open_gate_after(policy: GatedPolicy, index: int) -> threading.Thread:
    def run() -> None:
        while len(policy.gates) <= index:
            threading.Event().wait(0.001)
        policy.gates[index].set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_realtime_executor_keeps_acting_while_the_worker_computes() -> None:
    policy = GatedPolicy()
    policy.supports_rtc = True  # type: ignore[attr-defined]
    with RealtimeChunkExecutor(policy, mode="rtc", execution_horizon=4, inference_delay=2) as executor:
        executor.reset()
        assert policy.resets == 1
        open_gate_after(policy, 0)  # the first chunk: the robot waits for it
        got = [float(executor.act({"step": 0})[0])]
        assert executor.stalls == 1
        got += [float(executor.act({"step": t})[0]) for t in (1, 2, 3, 4, 5)]  # step 4 requests; still computing
        executor.pending[1].running() or threading.Event().wait(0.05)  # type: ignore[index]
        while len(policy.gates) < 2:  # the worker has picked the request up
            threading.Event().wait(0.001)
        assert got == [0, 1, 2, 3, 4, 5]
        assert policy.calls[1]["step"] == 4 and policy.calls[1]["rtc"].inference_delay == 2
        assert policy.calls[1]["rtc"].actions[:, 0].tolist() == [4, 5, 6, 7]
        policy.gates[1].set()
        executor.pending[1].result()  # type: ignore[index]  # arrived before step 6
        got += [float(executor.act({"step": t})[0]) for t in (6, 7)]
        assert got[6:] == [402, 403] and executor.stalls == 1
        assert executor.switch_jumps == [abs(402 - 5)]
        # arrived 2 steps after the request: the measured delay, used for the next rtc prefix
        assert list(executor.delays) == [0, 2]


def test_realtime_sync_waits_for_every_chunk() -> None:
    policy = GatedPolicy()
    with RealtimeChunkExecutor(policy, mode="sync", execution_horizon=2) as executor:
        executor.reset()
        for index in range(3):
            open_gate_after(policy, index)
        got = [float(executor.act({"step": t})[0]) for t in range(6)]
    assert got == [0, 1, 200, 201, 400, 401] and executor.stalls == 3


def test_realtime_rtc_needs_a_policy_that_takes_guidance() -> None:
    with pytest.raises(RTCError, match="GatedPolicy cannot use execution mode 'rtc'"):
        RealtimeChunkExecutor(GatedPolicy(), mode="rtc", execution_horizon=4)
