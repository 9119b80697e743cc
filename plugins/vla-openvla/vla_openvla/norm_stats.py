"""OpenVLA's `norm_stats` (`config.json` / `dataset_statistics.json`): picking the dataset by
`unnorm_key`, normalising proprio (OFT) and un-normalising actions, as the reference does.

`norm_stats = {dataset_name: {"action": {"q01", "q99", "min", "max", "mask", ...}, "proprio": {...}}}`.
`mask` (default all True) marks the dims that are normalised; the others (the gripper in
`bridge_orig`) pass through unchanged in both directions.

- training (`prismatic/vla/datasets/rlds/utils/data_utils.py` `normalize_action_and_proprio`):
  `clip(2 * (x - low) / (high - low + 1e-8) - 1, -1, 1)` where mask, else x; dims with min == max -> 0.
- OpenVLA (`modeling_prismatic.py` `predict_action`): `0.5 * (a + 1) * (q99 - q01) + q01` where mask, else a.
- OFT (`modeling_prismatic.py` `_unnormalize_actions`): the same with `+ 1e-8` in the range, over
  q01/q99 (`bounds_q99`: LIBERO, BRIDGE) or min/max (`bounds`: ALOHA); proprio
  (`openvla_utils.normalize_proprio`): `clip(2 * (p - low) / (high - low + 1e-8) - 1, -1, 1)` where
  mask, else p (still clipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from vla_core.errors import DataError

Bounds = Literal["bounds_q99", "bounds"]
#: OFT's ACTION_PROPRIO_NORMALIZATION_TYPE -> the statistics it reads (low, high).
BOUND_KEYS: dict[str, tuple[str, str]] = {"bounds_q99": ("q01", "q99"), "bounds": ("min", "max")}


def select_unnorm_key(norm_stats: Mapping[str, Any] | None, unnorm_key: str | None) -> str:
    """`_check_unnorm_key`: the only dataset when none is given; otherwise the given one, which must exist."""
    keys = sorted(norm_stats or {})
    if not keys:
        raise DataError("this checkpoint has no normalisation statistics (no norm_stats in config.json and no "
                        "dataset_statistics.json), so its actions cannot be put back into robot units.")
    if unnorm_key is None:
        if len(keys) > 1:
            raise DataError(
                f"this checkpoint holds the statistics of {len(keys)} datasets: {keys}. Choose the one whose "
                "robot you control: `policy.processor.unnorm_key = \"<name>\"` (or `unnorm_key:` in the "
                "processor config), as the reference's `predict_action(..., unnorm_key=...)`."
            )
        return keys[0]
    if unnorm_key not in keys:
        raise DataError(f"unnorm_key '{unnorm_key}' is not in this checkpoint's statistics; choose one of {keys}.")
    return unnorm_key


def _bounds(stats: Mapping[str, Any], bounds: Bounds, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low_key, high_key = BOUND_KEYS[bounds]
    if low_key not in stats or high_key not in stats:
        raise DataError(f"the {what} statistics have no '{low_key}'/'{high_key}' (they have {sorted(stats)}), which "
                        f"normalisation '{bounds}' reads.")
    low, high = np.asarray(stats[low_key], dtype=np.float64), np.asarray(stats[high_key], dtype=np.float64)
    mask = np.asarray(stats.get("mask", np.ones_like(low, dtype=bool)), dtype=bool)
    return low, high, mask


def unnormalize_actions(
    actions: np.ndarray, stats: Mapping[str, Any], bounds: Bounds = "bounds_q99", eps: float = 0.0
) -> np.ndarray:
    """(..., A) normalised -> (..., A) float64 robot units; masked-out dims are left as predicted.
    `eps`: 0 for OpenVLA, 1e-8 for OFT (added to the range)."""
    low, high, mask = _bounds(stats, bounds, "action")
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape[-1] != low.shape[-1]:
        raise DataError(f"the model predicts {actions.shape[-1]} action dims but the statistics have "
                        f"{low.shape[-1]}; the unnorm_key belongs to another robot.")
    return np.where(mask, 0.5 * (actions + 1) * (high - low + eps) + low, actions)


def normalize_proprio(proprio: np.ndarray, stats: Mapping[str, Any], bounds: Bounds = "bounds_q99") -> np.ndarray:
    """OFT's `normalize_proprio`: (P,) robot units -> (P,) float64 in [-1, 1] (clipped)."""
    low, high, mask = _bounds(stats, bounds, "proprio")
    proprio = np.asarray(proprio, dtype=np.float64)
    if proprio.shape[-1] != low.shape[-1]:
        raise DataError(f"the state has {proprio.shape[-1]} values but the checkpoint's proprio statistics have "
                        f"{low.shape[-1]}; send the robot state the model was trained on.")
    normalized = np.where(mask, 2 * (proprio - low) / (high - low + 1e-8) - 1, proprio)
    return np.clip(normalized, -1.0, 1.0)


def normalize_for_training(values: np.ndarray, stats: Mapping[str, Any], bounds: Bounds = "bounds_q99") -> np.ndarray:
    """`normalize_action_and_proprio` (BOUNDS / BOUNDS_Q99) on (..., D) actions or proprio -> float64."""
    low, high, mask = _bounds(stats, bounds, "action/proprio")
    values = np.asarray(values, dtype=np.float64)
    normalized = np.where(mask, np.clip(2 * (values - low) / (high - low + 1e-8) - 1, -1, 1), values)
    constant = np.asarray(stats["min"]) == np.asarray(stats["max"]) if "min" in stats and "max" in stats else False
    return np.where(constant, 0.0, normalized)
