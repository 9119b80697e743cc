"""Which message key feeds which model input: openpi's flat keys -> the checkpoint's names.

A robot speaking openpi's protocol sends flat keys (`observation/image`,
`observation/wrist_image`, `observation/state`, `prompt`); a vla checkpoint names its
cameras after the dataset's features (`observation.images.top`, ...). A key map sends each
wire key to one target: a camera name, `state`, `task`, `embodiment_id` or `noise`.
Several keys mapped to `state` are concatenated in the map's order (DROID sends joint and
gripper positions apart).

Sources, later ones winning: the checkpoint's own names (always accepted), openpi's
LIBERO-style defaults, the vla-eval harness's names (`vla serve --protocol vla-eval`),
`serving.json` saved in the checkpoint (`{"keys": {wire: target}}`) and
`vla serve --key wire=target`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from vla_core.errors import ConfigError

SERVING_FILE = "serving.json"
SCALAR_TARGETS = ("state", "task", "embodiment_id", "noise")


def default_key_map(cameras: Sequence[str]) -> dict[str, str]:
    """The checkpoint's own names plus openpi's LIBERO-example keys for the first two cameras."""
    keys = {name: name for name in (*cameras, *SCALAR_TARGETS)}
    keys.update({"observation/state": "state", "prompt": "task"})
    for wire, index in (("observation/image", 0), ("observation/wrist_image", 1)):
        if index < len(cameras):
            keys[wire] = cameras[index]
    return keys


# vla-eval's benchmarks send {"images": {camera: frame}, "states": vector, "task_description": str};
# flattened with "/" (vla_eval_server.py). Their camera names, by role: the scene camera of
# LIBERO / RoboCerebra / RoboMME, SimplerEnv and CALVIN, then the wrist camera of LIBERO and CALVIN.
VLA_EVAL_SCENE_CAMERAS = ("images/agentview", "images/primary", "images/rgb_static")
VLA_EVAL_WRIST_CAMERAS = ("images/wrist", "images/rgb_gripper")


def vla_eval_key_map(cameras: Sequence[str]) -> dict[str, str]:
    """The vla-eval harness's flattened keys -> the checkpoint's first two cameras, state and task."""
    keys = {"states": "state", "state": "state", "task_description": "task"}
    for wires, index in ((VLA_EVAL_SCENE_CAMERAS, 0), (VLA_EVAL_WRIST_CAMERAS, 1)):
        if index < len(cameras):
            keys.update(dict.fromkeys(wires, cameras[index]))
    return keys


def parse_key_options(options: Sequence[str]) -> dict[str, str]:
    """`["observation/image=observation.images.top", ...]` (from `--key`) -> a map."""
    keys: dict[str, str] = {}
    for option in options:
        wire, sep, target = option.partition("=")
        if not sep or not wire.strip() or not target.strip():
            raise ConfigError(f"--key {option!r} is not WIRE_KEY=TARGET, e.g. observation/image=observation.images.top")
        keys[wire.strip()] = target.strip()
    return keys


def load_checkpoint_key_map(checkpoint: str | Path | None) -> dict[str, str]:
    """The `keys` saved in `<checkpoint>/serving.json`, or {} when there is none."""
    if checkpoint is None or not (Path(checkpoint) / SERVING_FILE).is_file():
        return {}
    path = Path(checkpoint) / SERVING_FILE
    try:
        keys = json.loads(path.read_text())["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        example = '{"keys": {"observation/image": CAMERA}}'
        raise ConfigError(f"{path} must be JSON like {example} ({exc}).") from None
    if not isinstance(keys, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise ConfigError(f"{path}: 'keys' must map wire keys (strings) to targets (strings).")
    return dict(keys)


def build_key_map(cameras: Sequence[str], *overrides: Mapping[str, str]) -> dict[str, str]:
    """Defaults updated by each override in turn; every target must be a camera or a known input."""
    keys = default_key_map(cameras)
    for override in overrides:
        keys.update(override)
    valid = (*cameras, *SCALAR_TARGETS)
    for wire, target in keys.items():
        if target not in valid:
            raise ConfigError(
                f"the key map sends '{wire}' to '{target}', which is not an input of this checkpoint; targets are "
                f"its cameras {list(cameras)} and {list(SCALAR_TARGETS)}."
            )
    return keys
