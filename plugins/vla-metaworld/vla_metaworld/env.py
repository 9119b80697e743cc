"""MetaWorldEnv: Meta-World v3 tasks as a `vla.envs` env, rendered offscreen on a CPU."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_core.envs.spec import CameraSpec, EnvSpec
from vla_core.errors import EnvError
from vla_metaworld.camera import FastCamera, check_camera
from vla_metaworld.gl import configure_gl
from vla_metaworld.layouts import LayoutBank
from vla_metaworld.tasks import ALL_TASKS, base_task, canonical_task, expand_tasks, instruction
from vla_metaworld.variants import VARIANTS

#: Proprio state: the end-effector position and how far the gripper is open, nothing about
#: the objects, so a policy has to find them in the image.
STATE_NAMES = ("ee_x", "ee_y", "ee_z", "gripper_open")
ACTION_NAMES = ("delta_x", "delta_y", "delta_z", "gripper_effort")
FPS = 80  # MuJoCo timestep 2.5 ms x frame_skip 5


class MetaWorldEnv:
    """Meta-World v3 (MT1 layouts), one camera image + end-effector state, 4-dim actions.

    `reset(task, seed)` puts the scene in the layout of `seed` (see `layouts.py`): the
    same seed always gives the same layout, images and, for a deterministic policy, the
    same outcome. `step` reports success at that step; Meta-World's success is not sticky,
    so a rollout counts an episode successful if any step succeeded. The variants of
    `variants.py` (e.g. `reach-goal-at-start`) run their base task with less to see.

    Args:
        image_size: height and width of the camera image in pixels.
        camera: Meta-World camera, e.g. corner4 (default), corner2, topview.
        max_steps: the step cap of an episode (Meta-World's own is 500).
    """

    #: `step(action, render=False)` skips the camera when the caller will not look.
    can_skip_render = True

    def __init__(self, image_size: int = 64, camera: str = "corner4", max_steps: int = 500) -> None:
        check_camera(camera)
        if not 8 <= image_size <= 1024:
            raise EnvError(f"image_size must be between 8 and 1024 pixels, got {image_size}.")
        if max_steps < 1:
            raise EnvError(f"max_steps must be >= 1, got {max_steps}.")
        configure_gl()  # before anything imports mujoco
        self.image_size, self.camera, self.max_steps = image_size, camera, max_steps
        self.spec = EnvSpec(
            cameras=(CameraSpec(camera, image_size, image_size),),
            state_names=STATE_NAMES,
            action_names=ACTION_NAMES,
            action_low=(-1.0,) * 4,
            action_high=(1.0,) * 4,
            fps=FPS,
            max_steps=max_steps,
            robot_type="sawyer",
        )
        self._layouts = LayoutBank()
        self._sims: dict[str, Any] = {}
        self._cameras: dict[str, FastCamera] = {}
        #: per variant with target markers: [(site id, its alpha when drawn)]
        self._markers: dict[str, list[tuple[int, float]]] = {}
        self._task: str | None = None
        self._raw: np.ndarray | None = None
        self._steps = 0

    # ---- the env contract ------------------------------------------------------------
    def tasks(self) -> list[str]:
        """All 50 Meta-World v3 task names, then the variants of `variants.py`."""
        return list(ALL_TASKS)

    def instruction(self, task: str) -> str:
        return instruction(task)

    def expand_tasks(self, names: list[str]) -> list[str]:
        """'drawer-close', 'drawer-close-v3' and groups ('mt10', 'demo', 'history') -> v3 task names."""
        return expand_tasks(names)

    def reset(self, task: str, seed: int) -> dict[str, Any]:
        """Start `task` in the layout of `seed` (>= 0) -> the first raw observation."""
        task = canonical_task(task)
        if seed < 0:
            raise EnvError(f"seeds are >= 0, got {seed}.")
        sim = self._sim(task)
        sim.set_task(self._layouts.layout(base_task(task), seed))
        self._raw, _ = sim.reset()
        self._task, self._steps = task, 0
        return self._observation(render=True)

    def step(self, action: Any, render: bool = True) -> tuple[dict[str, Any], bool, bool]:
        """Apply a (4,) action (clipped to [-1, 1]) -> (observation, success now, done).

        `done` is True at the step cap. With `render=False` the observation has no image.
        """
        if self._task is None:
            raise EnvError("call reset(task, seed) before step(action).")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (4,):
            raise EnvError(f"Meta-World actions have 4 dims (dx, dy, dz, gripper), got shape {action.shape}.")
        if self._steps >= self.max_steps:
            raise EnvError(f"the episode reached its step cap ({self.max_steps}); call reset() first.")
        self._raw, _, _, _, info = self._sims[self._task].step(np.clip(action, -1.0, 1.0))
        self._steps += 1
        return self._observation(render), bool(info["success"]), self._steps >= self.max_steps

    def expert(self, task: str) -> Any:
        """The scripted expert of `task` (reads the full simulator state)."""
        from vla_metaworld.experts import MetaWorldExpert

        return MetaWorldExpert(self, task)

    def close(self) -> None:
        for camera in self._cameras.values():
            camera.close()
        for sim in self._sims.values():
            sim.close()
        self._cameras.clear()
        self._sims.clear()

    # ---- helpers ---------------------------------------------------------------------
    def privileged_state(self) -> np.ndarray:
        """Meta-World's full (39,) observation: hand, gripper, object poses, goal. For experts only."""
        if self._raw is None:
            raise EnvError("call reset(task, seed) first.")
        return self._raw

    def render(self) -> np.ndarray:
        """The current camera image, uint8 (image_size, image_size, 3). A variant's target
        markers are drawn only while it shows them (the first steps of an episode)."""
        if self._task is None:
            raise EnvError("call reset(task, seed) first.")
        sim = self._sims[self._task]
        variant = VARIANTS.get(self._task)
        if variant is not None and self._markers[self._task]:
            visible = variant.marker_visible(self._steps)
            for site, alpha in self._markers[self._task]:
                sim.model.site_rgba[site, 3] = alpha if visible else 0.0
        return self._cameras[self._task].render(sim.data)

    def _observation(self, render: bool) -> dict[str, Any]:
        assert self._task is not None and self._raw is not None
        variant = VARIANTS.get(self._task)
        state = self._raw[:4] if variant is None or variant.state else np.zeros(4)
        observation: dict[str, Any] = {"state": state.astype(np.float32), "task": instruction(self._task)}
        if render:
            observation[self.camera] = self.render()
        return observation

    def _sim(self, task: str) -> Any:
        """One Meta-World env per task (a variant gets its own, its markers changed), built
        on first use and reused across episodes."""
        if task not in self._sims:
            import mujoco
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS

            sim = ALL_V3_ENVIRONMENTS[base_task(task)]()
            sim.max_path_length = max(self.max_steps, sim.max_path_length)
            variant = VARIANTS.get(task)
            if variant is not None:
                markers = []
                for name in variant.marker_sites:
                    site = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_SITE, name)
                    if site < 0:
                        raise EnvError(f"{task}: {variant.base} has no site '{name}' to mark its target.")
                    if variant.marker_radius is not None:
                        sim.model.site_size[site] = variant.marker_radius
                    markers.append((site, float(sim.model.site_rgba[site, 3])))
                self._markers[task] = markers
            self._sims[task] = sim
            self._cameras[task] = FastCamera(sim.model, self.camera, self.image_size)
        return self._sims[task]
