"""A LeRobot dataset's `meta/info.json` checked against its data files when it is opened.

info.json declares every feature's shape and the dataset's size; the parquet and video
files hold the data. When they disagree (an edited info.json, a conversion that went
wrong), training would otherwise fail later with a message about the model (a state
larger than `max_state_dim`, a resize of the wrong image) or not at all (a wrong
`total_frames` skews nothing visibly). Each check names the file that disagrees.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.data.lerobot_meta import INFO_PATH
from vla_core.errors import DataError


def check_vector_width(path: Path, key: str, values: np.ndarray, feature: dict[str, Any], root: Path) -> None:
    """A state/action column of data file `path` (N, D) against the shape info.json declares."""
    shape = feature.get("shape")
    if not shape or values.ndim == 0 or len(values) == 0:
        return
    declared = math.prod(int(d) for d in shape)
    width = int(np.prod(values.shape[1:])) if values.ndim > 1 else 1
    if width != declared:
        raise DataError(
            f"data file '{path}' column '{key}' holds {width} values per frame, but '{root / INFO_PATH}' declares "
            f"shape {list(shape)} for it. Fix the shape in info.json (or re-convert the dataset) so the two agree."
        )


def check_row_counts(root: Path, info: dict[str, Any], rows_per_file: dict[Path, int], num_episodes: int) -> None:
    """info.json's `total_frames` and `total_episodes` against the whole dataset's data files
    (only when every episode was read: a subset does not see every file)."""
    total = sum(rows_per_file.values())
    declared = info.get("total_frames")
    if declared is not None and int(declared) != total:
        files = ", ".join(f"'{path}' ({rows} rows)" for path, rows in list(rows_per_file.items())[:8])
        raise DataError(
            f"'{root / INFO_PATH}' declares total_frames {declared}, but the data files hold {total} rows ({files}). "
            "Fix total_frames in info.json, or restore the missing or extra data."
        )
    declared = info.get("total_episodes")
    if declared is not None and int(declared) != num_episodes:
        raise DataError(
            f"'{root / INFO_PATH}' declares total_episodes {declared}, but the episode metadata under "
            f"'{root / 'meta'}' lists {num_episodes}. Fix info.json, or restore the episode metadata."
        )


def declared_height_width(feature: dict[str, Any]) -> tuple[int, int] | None:
    """(H, W) of an image/video feature from its shape: by `names` when given (lerobot writes
    ["height", "width", "channels"] or channels first), else (H, W, 3) or (3, H, W)."""
    shape = [int(d) for d in feature.get("shape") or []]
    if len(shape) != 3:
        return None
    names = [str(n).lower() for n in feature.get("names") or []]
    if "height" in names and "width" in names:
        return shape[names.index("height")], shape[names.index("width")]
    if shape[0] in (1, 3) and shape[-1] not in (1, 3):
        return shape[1], shape[2]
    return shape[0], shape[1]


def check_image_shape(key: str, image: np.ndarray, feature: dict[str, Any], source: str, root: Path) -> None:
    """A decoded frame (H, W, 3) of camera `key`, read from `source`, against info.json."""
    declared = declared_height_width(feature)
    if declared is None or tuple(image.shape[:2]) == declared:
        return
    height, width = image.shape[:2]
    raise DataError(
        f"{source} holds {height}x{width} (height x width) frames for camera '{key}', but '{root / INFO_PATH}' "
        f"declares shape {feature.get('shape')}. Fix the shape in info.json (or re-encode the images) so they agree."
    )
