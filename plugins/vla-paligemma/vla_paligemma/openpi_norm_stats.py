"""openpi's normalisation: `norm_stats.json` and `transforms.Normalize` / `transforms.Unnormalize`.

The file (`openpi/shared/normalize.py`, written under `assets/<asset_id>/`) is
`{"norm_stats": {"state": {"mean", "std", "q01", "q99"}, "actions": {...}}}`, one list per
statistic. pi0 normalises with z-scores, pi0.5 with quantiles (`use_quantile_norm`):

    z-score:  (x - mean) / (std + 1e-6)              back: x * (std + 1e-6) + mean
    quantile: (x - q01) / (q99 - q01 + 1e-6) * 2 - 1  back: (x + 1) / 2 * (q99 - q01 + 1e-6) + q01

Normalising slices the statistics to the data's width; un-normalising a wider model output
keeps the extra dims as they are (quantile) or uses mean 0, std 1 for them (z-score). All in
float64 numpy, as openpi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.errors import CheckpointError, DataError

NORM_STATS_FILE = "norm_stats.json"
EPS = 1e-6


@dataclass
class NormStats:
    """One feature's statistics (openpi's `NormStats`), (D,) float64 each; q01/q99 may be absent."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.q01 is not None and self.q99 is not None:
            out |= {"q01": self.q01.tolist(), "q99": self.q99.tolist()}
        return out

    @property
    def dim(self) -> int:
        return int(self.mean.shape[-1])


def read_norm_stats(path: str | Path) -> dict[str, NormStats]:
    """`norm_stats.json` (the file, or a directory holding it) -> {"state": ..., "actions": ...}."""
    path = Path(path)
    if path.is_dir():
        path = path / NORM_STATS_FILE
    try:
        raw = json.loads(path.read_text())["norm_stats"]
        stats = {
            key: NormStats(**{
                name: np.asarray(value[name], dtype=np.float64) if value.get(name) is not None else None
                for name in ("mean", "std", "q01", "q99")
            })
            for key, value in raw.items()
        }
    except FileNotFoundError:
        raise CheckpointError(f"'{path}' does not exist: openpi checkpoints keep it as assets/<asset_id>/"
                              f"{NORM_STATS_FILE}.") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path} is not an openpi norm_stats.json ({type(exc).__name__}: {exc}); it must hold "
            '{"norm_stats": {"state": {"mean": [...], "std": [...], "q01": [...], "q99": [...]}, "actions": {...}}}.'
        ) from None
    for key in ("state", "actions"):
        if key not in stats:
            raise CheckpointError(f"{path} has no '{key}' statistics (it has {sorted(stats)}).")
    return stats


def write_norm_stats(path: Path, stats: dict[str, NormStats]) -> None:
    """Write openpi's `norm_stats.json` layout."""
    payload = {"norm_stats": {key: value.to_dict() for key, value in stats.items()}}
    path.write_text(json.dumps(payload, indent=2))


def _quantiles(stats: NormStats, what: str) -> tuple[np.ndarray, np.ndarray]:
    if stats.q01 is None or stats.q99 is None:
        raise DataError(f"quantile normalisation (pi0.5) needs q01 and q99 for the {what}; norm_stats.json lacks them.")
    return stats.q01, stats.q99


def normalize(x: np.ndarray, stats: NormStats, use_quantiles: bool, what: str) -> np.ndarray:
    """openpi `Normalize._normalize` / `_normalize_quantile`: (..., D) -> (..., D) float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] > stats.dim:
        raise DataError(
            f"the {what} has {x.shape[-1]} values but the checkpoint's norm_stats.json has statistics for "
            f"{stats.dim}; the observation does not match the robot the checkpoint was trained on."
        )
    width = x.shape[-1]
    if use_quantiles:
        q01, q99 = _quantiles(stats, what)
        q01, q99 = q01[..., :width], q99[..., :width]
        return (x - q01) / (q99 - q01 + EPS) * 2.0 - 1.0
    mean, std = stats.mean[..., :width], stats.std[..., :width]
    return (x - mean) / (std + EPS)


def unnormalize(x: np.ndarray, stats: NormStats, use_quantiles: bool) -> np.ndarray:
    """openpi `Unnormalize._unnormalize` / `_unnormalize_quantile`: (..., A) -> (..., A), A >= the stats' width."""
    x = np.asarray(x)
    dim = stats.dim
    if use_quantiles:
        q01, q99 = _quantiles(stats, "actions")
        if dim < x.shape[-1]:
            return np.concatenate([(x[..., :dim] + 1.0) / 2.0 * (q99 - q01 + EPS) + q01, x[..., dim:]], axis=-1)
        return (x + 1.0) / 2.0 * (q99 - q01 + EPS) + q01
    pad = max(0, x.shape[-1] - dim)
    mean = np.pad(stats.mean, (0, pad), constant_values=0.0)
    std = np.pad(stats.std, (0, pad), constant_values=1.0)
    return x * (std + EPS) + mean
