"""The wire format between robot and policy server: numpy `.npz` archives, no pickle.

An observation `{"images": {camera: uint8 (H, W, 3)}, "state": (state_dim,), "task": str}`
is flattened to arrays named `images/<camera>`, `state`, `task` (a 0-d unicode array) and
optionally `noise` (T, A); the reply holds `actions` (T, action_dim) float32. Loading uses
`allow_pickle=False`, so a request can carry arrays only, never code.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from vla_core.errors import VLAError

IMAGE_PREFIX = "images/"


class WireFormatError(VLAError):
    """A request or reply body is not a valid observation / action archive."""


def encode_arrays(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def decode_arrays(body: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        raise WireFormatError(f"the body is not a numpy .npz archive of plain arrays ({exc}).") from None


def encode_observation(observation: dict[str, Any]) -> bytes:
    """Observation dict -> .npz bytes."""
    arrays: dict[str, Any] = {}
    for camera, image in observation.get("images", {}).items():
        arrays[IMAGE_PREFIX + camera] = np.asarray(image)
    for key, value in observation.items():
        if key == "images":
            continue
        arrays[key] = np.asarray(value, dtype=np.str_) if isinstance(value, str) else np.asarray(value)
    return encode_arrays(arrays)


def decode_observation(body: bytes) -> dict[str, Any]:
    """.npz bytes -> observation dict (images by camera, `task` back to str)."""
    arrays = decode_arrays(body)
    observation: dict[str, Any] = {"images": {}}
    for name, value in arrays.items():
        if name.startswith(IMAGE_PREFIX):
            observation["images"][name[len(IMAGE_PREFIX):]] = value
        elif value.dtype.kind == "U":
            observation[name] = str(value)
        else:
            observation[name] = value
    for required in ("state", "task"):
        if required not in observation:
            raise WireFormatError(
                f"the observation has no '{required}' array; send images/<camera>, state and task "
                "(see vla_core.serving.wire.encode_observation)."
            )
    return observation
