"""lerobot's `delta_timestamps`: which frames around the current one a sample reads.

`{key: [offsets in seconds]}`, each offset a multiple of 1/fps. Two uses here:

* action keys: the action chunk, e.g. `{action: [0.0, 0.1, 0.2]}` (T actions from frame t on);
* observation keys (cameras and state keys): the observation history, e.g.
  `{observation.images.top: [-0.2, -0.1, 0.0], observation.state: [-0.2, -0.1, 0.0]}`
  (T_obs frames ending at the current one).

Frames outside the episode are clamped to its first/last frame and flagged as padding,
exactly as lerobot's `_get_query_indices` does. The observation keys share one history
axis in the batch, so every camera and state key takes the same offsets; they must end at
0 (the current frame) and be strictly increasing, so that the last frame of the window is
the one the action chunk starts at.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vla_core.errors import DataError


def to_frame_offsets(offsets: Sequence[float], fps: float, tolerance_s: float, key: str) -> np.ndarray:
    """Seconds -> (len,) int frame offsets; DataError for offsets off the 1/fps grid (lerobot's check)."""
    off_grid = [d for d in offsets if abs(d * fps - round(d * fps)) / fps > tolerance_s]
    if off_grid:
        raise DataError(
            f"delta_timestamps[{key!r}] has {off_grid}, which are not multiples of 1/fps = {1 / fps:.6f}s (within "
            f"tolerance_s={tolerance_s}); use multiples of the frame period."
        )
    return np.array([round(d * fps) for d in offsets], dtype=np.int64)


def split_delta_timestamps(
    delta_timestamps: Mapping[str, Sequence[float]],
    action_keys: Sequence[str],
    observation_keys: Sequence[str],
    fps: float,
    tolerance_s: float,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validate `delta_timestamps` and return (action frame offsets or None, observation frame
    offsets or None). None means the config does not name that group."""
    unknown = [k for k in delta_timestamps if k not in action_keys and k not in observation_keys]
    if unknown:
        raise DataError(
            f"delta_timestamps has keys {unknown} that are neither action keys ({', '.join(action_keys)}) nor "
            f"observation keys of the embodiment (cameras and state: {', '.join(observation_keys) or 'none'}). "
            "Remove them or add them to the embodiment spec."
        )
    actions = _shared_offsets(delta_timestamps, action_keys, "action", fps, tolerance_s)
    history = _shared_offsets(delta_timestamps, observation_keys, "observation", fps, tolerance_s)
    if history is not None and (history[-1] != 0 or np.any(np.diff(history) <= 0)):
        raise DataError(
            f"the observation offsets {list(delta_timestamps[observation_keys[0]])} must be strictly increasing and "
            "end at 0.0 (the current frame): the history axis holds past frames, oldest first, e.g. "
            "[-0.2, -0.1, 0.0]."
        )
    return actions, history


def _shared_offsets(
    delta_timestamps: Mapping[str, Sequence[float]], keys: Sequence[str], group: str, fps: float, tolerance_s: float
) -> np.ndarray | None:
    """The offsets every key of `group` shares (one axis in the batch), or None when none is named."""
    named = [k for k in keys if k in delta_timestamps]
    if not named:
        return None
    lists = {k: [float(v) for v in delta_timestamps[k]] for k in keys if k in delta_timestamps}
    first = lists[named[0]]
    missing = [k for k in keys if k not in delta_timestamps]
    if missing or any(v != first for v in lists.values()) or not first:
        raise DataError(
            f"delta_timestamps must give the same non-empty offsets to every {group} key ({', '.join(keys)}), "
            f"because they share one time axis in the batch; got {dict(lists)}"
            + (f", nothing for {missing}" if missing else "")
            + "."
        )
    return to_frame_offsets(first, fps, tolerance_s, named[0])


def query_indices(index: int, offsets: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """lerobot's `_get_query_indices` for one key: rows `index + offsets`, clamped into the
    episode's rows [start, end), and (len,) bool flags, True where the row was outside."""
    query = index + offsets
    is_pad = (query < start) | (query >= end)
    return np.clip(query, start, end - 1), is_pad


def observation_history_length(spec: Mapping[str, Any]) -> int:
    """T_obs that a LeRobotDataset spec (`data` section) asks for, from its config alone
    (no dataset read): the number of offsets on its observation keys, 0 without history.

    Action keys are the inline embodiment's (or, for an embodiment file or none, `action`):
    good enough for config validation; the dataset itself checks the keys exactly."""
    delta = spec.get("delta_timestamps") or {}
    embodiment = spec.get("embodiment")
    action_keys = ["action"]
    if isinstance(embodiment, Mapping) and embodiment.get("action"):
        from vla_core.data.embodiment import EmbodimentSpec

        with contextlib.suppress(DataError):  # the dataset reports a bad embodiment with its own message
            action_keys = EmbodimentSpec.load(embodiment).action_keys
    lengths = [len(v) for k, v in delta.items() if k not in action_keys]
    return max(lengths, default=0)
