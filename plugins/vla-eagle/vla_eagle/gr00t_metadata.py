"""A GR00T checkpoint's `experiment_cfg/metadata.json`: per embodiment tag, the statistics
and shapes of every state/action key and the resolution of every camera.

Layout (Isaac-GR00T `gr00t/data/schema.py` `DatasetMetadata`, one entry per tag)::

    {"new_embodiment": {
        "statistics": {"state": {"single_arm": {"min": [...], "max": [...], "mean": [...],
                                                "std": [...], "q01": [...], "q99": [...]}, ...},
                       "action": {...}},
        "modalities": {"video": {"webcam": {"resolution": [640, 480], "channels": 3, "fps": 30.0}},
                       "state": {"single_arm": {"absolute": true, "rotation_type": null,
                                                "shape": [5], "continuous": true}, ...},
                       "action": {...}},
        "embodiment_tag": "new_embodiment"}}

Keys are listed without their modality prefix (`single_arm` is `state.single_arm`); their
order in the file is the default concatenation order. Video resolutions are (width, height).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.errors import CheckpointError

METADATA_PATH = "experiment_cfg/metadata.json"
STAT_NAMES = ("min", "max", "mean", "std", "q01", "q99")


@dataclass(frozen=True)
class EmbodimentMetadata:
    """One embodiment's entry of metadata.json.

    Attributes:
        tag: the embodiment tag (the entry's key).
        statistics: {"state" | "action": {key: {stat name: (dim,) float64 array}}}.
        dims: {"state" | "action": {key: dim}}, in the file's order.
        video_resolutions: {camera key: (width, height)}, in the file's order.
        raw: the entry as read, written back unchanged by `save_pretrained`.
    """

    tag: str
    statistics: dict[str, dict[str, dict[str, np.ndarray]]]
    dims: dict[str, dict[str, int]]
    video_resolutions: dict[str, tuple[int, int]]
    raw: dict[str, Any]


def read_metadata(path: str | Path) -> dict[str, dict[str, Any]]:
    """metadata.json -> {tag: raw entry}; a clear CheckpointError when it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"'{path}' does not exist. A GR00T checkpoint keeps its normalisation statistics in "
            f"{METADATA_PATH}; copy it from the training run's output directory."
        )
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} could not be read as JSON ({exc}); restore it from the checkpoint.") from None
    if not isinstance(content, dict) or not content:
        raise CheckpointError(f"{path} holds no embodiment entries; expected {{tag: {{statistics, modalities}}}}.")
    return content


def select_embodiment(content: dict[str, dict[str, Any]], tag: str | None, source: str) -> EmbodimentMetadata:
    """The entry for `tag` (None: the only entry) parsed and checked, from `source` (for messages)."""
    if tag is None:
        if len(content) != 1:
            raise CheckpointError(
                f"{source} holds statistics for several embodiments ({', '.join(content)}); choose one with "
                "embodiment_tag (e.g. load_gr00t_n15(path, embodiment_tag='gr1'), or processor.embodiment_tag)."
            )
        tag = next(iter(content))
    if tag not in content:
        raise CheckpointError(
            f"{source} has no entry for embodiment tag '{tag}' (it has {', '.join(content)}); use one of those."
        )
    entry = content[tag]
    try:
        statistics = {role: _role_statistics(entry["statistics"][role]) for role in ("state", "action")}
        modalities = entry["modalities"]
        dims = {role: {key: _dim(meta["shape"]) for key, meta in modalities[role].items()}
                for role in ("state", "action")}
        videos = {key: (int(meta["resolution"][0]), int(meta["resolution"][1]))
                  for key, meta in modalities.get("video", {}).items()}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{source}: the entry '{tag}' is incomplete or malformed ({exc!r}).") from None
    for role in ("state", "action"):
        for key, dim in dims[role].items():
            stats = statistics[role].get(key)
            if stats is None:
                raise CheckpointError(
                    f"{source}: '{tag}' lists {role}.{key} in modalities but has no statistics for it.")
            bad = [name for name, values in stats.items() if values.shape != (dim,)]
            if bad:
                raise CheckpointError(
                    f"{source}: the statistics {', '.join(bad)} of {role}.{key} do not have the key's {dim} values."
                )
    return EmbodimentMetadata(tag, statistics, dims, videos, entry)


def _role_statistics(stats: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    return {
        key: {name: np.asarray(values[name], dtype=np.float64).reshape(-1) for name in STAT_NAMES if name in values}
        for key, values in stats.items()
    }


def _dim(shape: Any) -> int:
    if len(shape) != 1:
        raise ValueError(f"shape {shape} is not one-dimensional")
    return int(shape[0])
