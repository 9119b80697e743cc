"""Input checks before the model: a request either becomes a valid observation or a clear error.

A robot that sends a NaN joint reading, a batched (1, 8) state, a float frame in 0..255 or
an unknown key must get an error naming the key, what was expected and what arrived, never
a silently wrong or NaN action. `ObservationSpec.from_policy` reads what the checkpoint
expects (cameras, frame size, state dim, embodiments, noise shape) from the policy's
processor; what a policy does not declare is not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vla_core.errors import VLAError
from vla_core.serving.keys import build_key_map

logger = logging.getLogger(__name__)
FrameSizePolicy = Literal["warn", "refuse"]
# A frame more than this factor smaller or larger than the model's input (per side) is "far":
# the processor would resize it, but such frames usually mean the wrong camera or stream.
FAR_FRAME_FACTOR = 2.0


class ObservationError(VLAError):
    """A request's observation does not fit the policy (missing/unknown keys, shape, dtype, values)."""


@dataclass
class ObservationSpec:
    """What a policy accepts. None fields are not checked.

    Args:
        cameras: camera names in model order.
        keys: wire key -> target (a camera, state, task, embodiment_id or noise), see keys.py.
        image_size: the model's input (H, W); frames far from it are warned about or refused.
        state_dim: values in the state vector.
        embodiment_ids: the embodiment ids the model has weights for.
        noise_shape: (T, A) of the optional sampling noise.
        frame_size: "warn" (once per camera) or "refuse" when a frame is far from image_size.
    """

    cameras: list[str]
    keys: dict[str, str]
    image_size: tuple[int, int] | None = None
    state_dim: int | None = None
    embodiment_ids: range | None = None
    noise_shape: tuple[int, int] | None = None
    frame_size: FrameSizePolicy = "warn"
    _warned: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def from_policy(
        cls, policy: Any, key_overrides: tuple[Mapping[str, str], ...] = (), frame_size: FrameSizePolicy = "warn"
    ) -> ObservationSpec:
        """Read the expectations from `policy.processor` (a VLAProcessor) and `policy.vla`'s head."""
        processor = getattr(policy, "processor", None)
        cameras = list(_fact(processor, "cameras") or [])
        size = _fact(processor, "image_size")
        chunk, max_action = _fact(processor, "chunk_size"), _fact(processor, "max_action_dim")
        embodiment = _fact(processor, "embodiment")
        head = getattr(getattr(policy, "vla", None), "vla_head", None)
        ids: range | None = None
        if isinstance(getattr(head, "max_num_embodiments", None), int):
            ids = range(head.max_num_embodiments)  # per-embodiment weights: any trained slot
        elif embodiment is not None:
            ids = range(embodiment.embodiment_id, embodiment.embodiment_id + 1)  # only the one it was trained on
        return cls(
            cameras=cameras,
            keys=build_key_map(cameras, *key_overrides),
            image_size=tuple(size) if size is not None else None,
            state_dim=_fact(processor, "state_dim"),
            embodiment_ids=ids,
            noise_shape=(chunk, max_action) if chunk and max_action else None,
            frame_size=frame_size,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for the metadata a client reads on connect."""
        return {
            "keys": dict(self.keys),
            "cameras": list(self.cameras),
            "image_size": list(self.image_size) if self.image_size else None,
            "state_dim": self.state_dim,
            "embodiment_ids": [self.embodiment_ids.start, self.embodiment_ids.stop] if self.embodiment_ids else None,
            "noise_shape": list(self.noise_shape) if self.noise_shape else None,
        }

    # ---- the check --------------------------------------------------------------------------
    def check(self, message: Any) -> tuple[dict[str, Any], np.ndarray | None]:
        """A decoded message -> (observation for `Policy.act`, noise or None); ObservationError if invalid."""
        if not isinstance(message, Mapping):
            raise ObservationError(f"a request must be a map of observation keys, got {type(message).__name__}.")
        unknown = [k for k in message if k not in self.keys]
        if unknown:
            raise ObservationError(
                f"unknown key(s) {sorted(map(str, unknown))}; this server accepts {sorted(self.keys)} (map other "
                "names with `vla serve --key WIRE=TARGET` or the checkpoint's serving.json)."
            )
        by_target: dict[str, list[str]] = {}
        for wire in self.keys:  # the key map's order: state parts concatenate in it
            if wire in message:
                by_target.setdefault(self.keys[wire], []).append(wire)
        for target, wires in by_target.items():
            if len(wires) > 1 and target != "state":
                raise ObservationError(f"'{target}' is given twice, by keys {wires}; send it once.")
        missing = [t for t in (*self.cameras, "state", "task") if t not in by_target]
        if missing:
            sources = {t: [w for w, x in self.keys.items() if x == t] for t in missing}
            raise ObservationError(
                "missing " + "; ".join(f"'{t}' (send one of keys {sources[t]})" for t in missing) + "."
            )
        observation: dict[str, Any] = {
            "images": {cam: self._image(by_target[cam][0], message[by_target[cam][0]]) for cam in self.cameras},
            "state": self._state(by_target["state"], message),
            "task": _task(by_target["task"][0], message[by_target["task"][0]]),
        }
        if "embodiment_id" in by_target:
            key = by_target["embodiment_id"][0]
            observation["embodiment_id"] = self._embodiment_id(key, message[key])
        noise = None
        if "noise" in by_target:
            key = by_target["noise"][0]
            noise = self._noise(key, message[key])
        return observation, noise

    def _image(self, key: str, value: Any) -> np.ndarray:
        if not isinstance(value, np.ndarray):
            raise ObservationError(
                f"'{key}' must be an image array (H, W, 3) or (3, H, W), got {type(value).__name__}."
            )
        if value.ndim != 3 or 3 not in (value.shape[0], value.shape[-1]) or value.size == 0:
            raise ObservationError(f"'{key}' must be an image of shape (H, W, 3) or (3, H, W), got {value.shape}.")
        if value.dtype == np.uint8:
            pass
        elif value.dtype.kind == "f":
            if not np.isfinite(value).all():
                raise ObservationError(f"'{key}' holds NaN or inf pixels.")
            if value.min() < 0 or value.max() > 1:
                raise ObservationError(
                    f"'{key}' is a float image with values in [{value.min():g}, {value.max():g}]; float images must "
                    "be in [0, 1]. Send uint8 (0..255) frames."
                )
        else:
            raise ObservationError(f"'{key}' must be uint8 (or float in [0, 1]), got dtype {value.dtype}.")
        chw = value.shape[-1] != 3  # HWC unless only the first axis can be the channels
        height, width = value.shape[1:] if chw else value.shape[:2]
        self._check_frame_size(key, height, width)
        return value

    def _check_frame_size(self, key: str, height: int, width: int) -> None:
        if self.image_size is None:
            return
        want_h, want_w = self.image_size
        ratios = (height / want_h, width / want_w)
        if all(1 / FAR_FRAME_FACTOR <= r <= FAR_FRAME_FACTOR for r in ratios):
            return
        message = (
            f"'{key}' is {height}x{width} but the model takes {want_h}x{want_w} frames; it would be resized by "
            f"{ratios[0]:.2g}x{ratios[1]:.2g}. Resize on the robot, or check that this is the right camera."
        )
        if self.frame_size == "refuse":
            raise ObservationError(message)
        if key not in self._warned:  # once per key: a robot sends the same size every step
            self._warned.add(key)
            logger.warning("%s (warned once per key)", message)

    def _state(self, keys: list[str], message: Mapping[str, Any]) -> np.ndarray:
        parts = []
        for key in keys:
            part = _numeric(key, message[key])
            if part.ndim != 1:
                raise ObservationError(
                    f"'{key}' must be a 1-D vector, got shape {part.shape} (send one observation, not a batch)."
                )
            parts.append(part)
        state = np.concatenate(parts).astype(np.float32) if len(parts) > 1 else parts[0].astype(np.float32)
        named = " + ".join(f"'{k}'" for k in keys)
        if self.state_dim is not None and state.shape[0] != self.state_dim:
            raise ObservationError(
                f"the state ({named}) has {state.shape[0]} values; the model takes {self.state_dim}."
            )
        if not np.isfinite(state).all():
            bad = np.flatnonzero(~np.isfinite(state)).tolist()
            raise ObservationError(f"the state ({named}) holds NaN or inf at index {bad}.")
        return state

    def _embodiment_id(self, key: str, value: Any) -> int:
        array = np.asarray(value) if isinstance(value, (int, np.integer, np.ndarray)) else None
        if isinstance(value, bool) or array is None or array.ndim != 0 or array.dtype.kind not in "iu":
            got = f"{type(value).__name__} {getattr(value, 'shape', '')}".strip()
            raise ObservationError(f"'{key}' must be one integer, got {got}.")
        ident = int(array)
        if self.embodiment_ids is not None and ident not in self.embodiment_ids:
            raise ObservationError(
                f"'{key}' is {ident}; this model has embodiment ids {self.embodiment_ids.start}.."
                f"{self.embodiment_ids.stop - 1}."
            )
        return ident

    def _noise(self, key: str, value: Any) -> np.ndarray:
        noise = _numeric(key, value)
        if noise.dtype.kind != "f" or (self.noise_shape is not None and noise.shape != self.noise_shape):
            raise ObservationError(
                f"'{key}' must be float (T, A) = {self.noise_shape}, got {noise.dtype} {noise.shape}."
            )
        if not np.isfinite(noise).all():
            raise ObservationError(f"'{key}' holds NaN or inf.")
        return noise.astype(np.float32)


def _numeric(key: str, value: Any) -> np.ndarray:
    """An array or list of numbers -> a numeric ndarray (never an object array)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        value = np.asarray(value, dtype=np.float64)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        kind = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ObservationError(f"'{key}' must be a numeric array, got {kind}.")
    return value


def _task(key: str, value: Any) -> str:
    """A str (or a 0-d str array; bytes if valid UTF-8) -> the instruction."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "US":
        value = value.item()
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ObservationError(f"'{key}' is bytes that are not UTF-8 text; send the instruction as str.") from None
    if not isinstance(value, str):
        raise ObservationError(f"'{key}' must be the instruction string, got {type(value).__name__}.")
    return value


def _fact(obj: Any, name: str) -> Any:
    """obj.name, or None where obj lacks it or an unfitted processor raises."""
    try:
        return getattr(obj, name, None)
    except VLAError:
        return None
