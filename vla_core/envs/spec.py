"""What an env's observations and actions look like: cameras, proprio state, action space.

An env plugin describes itself with an `EnvSpec`; data generation turns it into the
LeRobot features of the dataset it writes, and evaluation checks a checkpoint against it
(a policy trained for another action dim cannot drive this env).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CameraSpec:
    """One camera of a raw observation: a uint8 (height, width, 3) image under `name`."""

    name: str
    height: int
    width: int


@dataclass(frozen=True)
class EnvSpec:
    """The observation and action spaces of an env, in robot units.

    A raw observation is a dict with one uint8 (H, W, 3) image per camera (keyed by the
    camera's name), `state` (state_dim,) float32 and `task` (the instruction string).
    Actions are (action_dim,) float arrays within [action_low, action_high].

    Attributes:
        cameras: the cameras in each observation, in order.
        state_names: one name per proprio state dim (its length is state_dim).
        action_names: one name per action dim (its length is action_dim).
        action_low / action_high: bounds of each action dim.
        fps: control frequency, written into datasets.
        max_steps: the step cap of an episode.
        robot_type: written into datasets' info.json.
    """

    cameras: tuple[CameraSpec, ...]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    fps: int
    max_steps: int
    robot_type: str = "unknown"

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(camera.name for camera in self.cameras)
