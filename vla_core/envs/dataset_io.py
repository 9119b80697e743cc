"""How env observations map to LeRobot dataset features and back.

A camera named `corner4` in the env is the dataset feature `observation.images.corner4`;
the proprio state is `observation.state`, the action `action` (LeRobot's conventions), so
a dataset generated from an env trains a policy whose processor reads that env directly.
"""

from __future__ import annotations

from typing import Any

from vla_core.envs.spec import EnvSpec

STATE_KEY = "observation.state"
ACTION_KEY = "action"


def camera_key(camera: str) -> str:
    """Env camera name -> dataset feature key."""
    return f"observation.images.{camera}"


def dataset_features(spec: EnvSpec, video: bool = False) -> dict[str, dict[str, Any]]:
    """The LeRobot features of a dataset recorded from an env with this spec; cameras as
    inline PNG images (lossless), or MP4 video with `video=True`."""
    features: dict[str, dict[str, Any]] = {
        camera_key(c.name): {
            "dtype": "video" if video else "image",
            "shape": [c.height, c.width, 3],
            "names": ["height", "width", "channels"],
        }
        for c in spec.cameras
    }
    features[STATE_KEY] = {"dtype": "float32", "shape": [spec.state_dim], "names": list(spec.state_names)}
    features[ACTION_KEY] = {"dtype": "float32", "shape": [spec.action_dim], "names": list(spec.action_names)}
    return features


def policy_observation(observation: dict[str, Any], spec: EnvSpec) -> dict[str, Any]:
    """An env's raw observation -> the processor's form: {"images": {feature key: image},
    "state", "task"}."""
    return {
        "images": {camera_key(c): observation[c] for c in spec.camera_names if c in observation},
        "state": observation["state"],
        "task": observation["task"],
    }
