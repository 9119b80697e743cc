"""A vla-eval benchmark without a simulator, for the harness's orchestrator to run against `vla serve`.

`LiberoLikeBenchmark` sends LIBERO's observation layout (`images/agentview`, `images/wrist`
when the server asks for it, `states` when asked, `task_description`, and `controller_states`
that no checkpoint input reads), built from (episode, step) so a test can rebuild every
observation, and records every action the harness receives in `EXECUTED`. Imported by the
orchestrator through its import string "harness_benchmark:LiberoLikeBenchmark".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from serving_fixtures import TOP, WRIST, noise, observation
from vla_eval.benchmarks.base import StepBenchmark, StepResult

EXECUTED: list[tuple[int, int, np.ndarray]] = []  # (episode, step, action (A,)) in the order executed


def observation_seed(episode: int, step: int) -> int:
    return 100 * episode + step


def harness_observation(seed: int, camera: str = "agentview", wrist: bool = True, state: bool = True,
                        with_noise: bool = True) -> dict[str, Any]:
    """serving_fixtures.observation(seed) in LIBERO's harness layout (+ the sampling noise when asked)."""
    obs = observation(seed)
    sent: dict[str, Any] = {"images": {camera: obs["images"][TOP]}, "task_description": obs["task"]}
    if wrist:
        sent["images"]["wrist"] = obs["images"][WRIST]
    if state:
        sent["states"] = obs["state"]
        sent["controller_states"] = np.zeros(8, np.float32)  # LIBERO sends it with the state; unmapped here
    if with_noise:
        sent["noise"] = noise(seed)
    return sent


class LiberoLikeBenchmark(StepBenchmark):
    """`steps` steps per episode, one task; success is never reached (the test reads the actions).

    Args:
        steps: episode length.
        camera: the scene camera's name in `images` (LIBERO's agentview; anything else is unmapped).
        with_noise: send the sampling noise as an observation key, so actions are comparable.
        send_wrist_image / send_state: LIBERO's flags, set by the server's HELLO.
    """

    def __init__(self, steps: int = 5, camera: str = "agentview", with_noise: bool = True,
                 send_wrist_image: bool = False, send_state: bool = False) -> None:
        super().__init__()
        self.steps, self.camera, self.with_noise = steps, camera, with_noise
        self.send_wrist_image, self.send_state = send_wrist_image, send_state
        self.episode = -1

    def get_tasks(self) -> list[dict[str, Any]]:
        return [{"name": "open the drawer", "suite": "toy"}]

    def reset(self, task: dict[str, Any]) -> int:
        self.episode += 1
        return 0  # the raw observation is the step number

    def step(self, action: dict[str, Any]) -> StepResult:
        step = self._last_result.obs
        EXECUTED.append((self.episode, step, np.asarray(action["actions"])))
        return StepResult(obs=step + 1, reward=0.0, done=step + 1 >= self.steps, info={})

    def make_obs(self, raw_obs: int, task: dict[str, Any]) -> dict[str, Any]:
        return harness_observation(observation_seed(self.episode, raw_obs), self.camera, self.send_wrist_image,
                                   self.send_state, self.with_noise)

    def get_step_result(self, step_result: StepResult) -> dict[str, Any]:
        return {"success": False}

    def get_metadata(self) -> dict[str, Any]:
        return {"max_steps": self.steps}
