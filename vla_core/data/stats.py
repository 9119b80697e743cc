"""Normalisation statistics: computed streaming over a dataset, saved as a versioned artifact.

`compute_stats(blocks)` streams (n, d) blocks twice:

1. count, mean and the sum of squared deviations merged block by block in float64
   (Chan et al.'s parallel update, so the result does not depend on the block size beyond
   rounding), min and max;
2. quantiles q01, q10, q50, q90, q99: exact (numpy's linear interpolation over all
   values) when the feature has at most `max_exact_values` values; otherwise read from a
   per-dim histogram of `histogram_bins` bins between min and max, linearly interpolated
   inside the bin, so each quantile is within (max - min) / histogram_bins of the exact one.

std is the population std (ddof=0), as numpy's and lerobot's.

`DatasetStatistics` is what a checkpoint stores as `dataset_statistics.json`: for each state
and action feature its role, dim, names, normalisation mode and stats, plus the dataset
fingerprint and a schema version. Loading checks the schema; `validate_against` checks the
names and dims against what a model/processor expects and names every mismatch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.errors import DataError

SCHEMA_VERSION = 1
STATS_FILE = "dataset_statistics.json"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
#: Stats each normalisation mode reads.
MODE_NEEDS = {"mean_std": ("mean", "std"), "min_max": ("min", "max"), "q01_q99": ("q01", "q99"), "identity": ()}
#: Added to std, and replacing a zero min-max/quantile range (lerobot's eps).
EPS = 1e-8

Blocks = Callable[[], Iterable[np.ndarray]] | Sequence[np.ndarray]


def compute_stats(blocks: Blocks, max_exact_values: int = 2**26, histogram_bins: int = 2**16) -> dict[str, np.ndarray]:
    """Stats of the rows of all blocks together: {mean, std, min, max, count, q01..q99}.

    Args:
        blocks: a sequence of (n, d) arrays, or a function returning a fresh iterable of them
            (it is called twice).
        max_exact_values: up to this many values (n * d) the quantiles are exact.
        histogram_bins: bins per dim for larger data (see the module docstring for the error).
    """
    make = blocks if callable(blocks) else (lambda: blocks)
    count, mean, m2, low, high = 0, None, None, None, None
    for raw in make():
        block = np.asarray(raw, dtype=np.float64)
        block = block.reshape(len(block), -1)
        if len(block) == 0:
            continue
        n_b, mean_b = len(block), block.mean(axis=0)
        m2_b = ((block - mean_b) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2, low, high = n_b, mean_b, m2_b, block.min(0), block.max(0)
            continue
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        low, high, count = np.minimum(low, block.min(0)), np.maximum(high, block.max(0)), total
    if mean is None:
        raise DataError("cannot compute statistics of an empty feature (no rows).")
    stats = {"mean": mean, "std": np.sqrt(m2 / count), "min": low, "max": high, "count": np.array([count])}
    dim = len(mean)
    if count * dim <= max_exact_values:
        values = np.concatenate([np.asarray(b, dtype=np.float64).reshape(len(b), -1) for b in make()])
        q = np.quantile(values, list(QUANTILES.values()), axis=0)
    else:
        q = _histogram_quantiles(make, low, high, histogram_bins)
    stats.update({name: q[i] for i, name in enumerate(QUANTILES)})
    return stats


def _histogram_quantiles(
    make: Callable[[], Iterable[np.ndarray]], low: np.ndarray, high: np.ndarray, bins: int
) -> np.ndarray:
    dim = len(low)
    width = np.where(high > low, (high - low) / bins, 1.0)
    hist = np.zeros((dim, bins), dtype=np.int64)
    for raw in make():
        block = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
        idx = np.clip(((block - low) / width).astype(np.int64), 0, bins - 1)
        for j in range(dim):
            hist[j] += np.bincount(idx[:, j], minlength=bins)
    cdf = np.cumsum(hist, axis=1)
    total = cdf[:, -1:]
    out = np.empty((len(QUANTILES), dim))
    for i, q in enumerate(QUANTILES.values()):
        target = q * (total[:, 0] - 1) + 1  # rank (1-based, fractional) of numpy's linear quantile
        for j in range(dim):
            b = int(np.searchsorted(cdf[j], target[j]))
            before = cdf[j, b - 1] if b > 0 else 0
            inside = (target[j] - before) / max(hist[j, b], 1)
            out[i, j] = low[j] + (b + np.clip(inside, 0, 1)) * width[j]
    return np.minimum(out, high)


@dataclass
class FeatureStatistics:
    """Stats of one state or action feature and how it is normalised."""

    key: str
    role: str  # "state" | "action"
    dim: int
    mode: str
    stats: dict[str, np.ndarray]
    names: list[str] | None = None

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale), (dim,) each, with normalised = (x - offset) / scale.

        mean_std: (x - mean) / (std + eps); min_max: 2 (x - min) / (max - min) - 1;
        q01_q99: 2 (x - q01) / (q99 - q01) - 1 (not clipped); identity: x.

        A constant feature (min == max, or q01 == q99) normalises to 0 and un-normalises
        back to its value (to eps / 2 per unit of model output), as GR00T's `Normalizer`
        does for min_max (gr00t/data/transform/state_action.py: `normalized[..., ~mask] = 0`,
        inverse `(x + 1) / 2 * (max - min) + min`). lerobot and openpi divide by the range
        plus eps instead, which maps it to -1: the model would see a constant feature at
        the edge of the range rather than at its centre."""
        if self.mode == "identity":
            return np.zeros(self.dim), np.ones(self.dim)
        if self.mode == "mean_std":
            return self.stats["mean"], self.stats["std"] + EPS
        low_key, high_key = ("min", "max") if self.mode == "min_max" else ("q01", "q99")
        low, high = self.stats[low_key], self.stats[high_key]
        constant = high - low == 0
        denom = np.where(constant, EPS, high - low)
        # offset = the centre of the range; for a constant feature its value, so it maps to 0.
        return np.where(constant, low, low + denom / 2.0), denom / 2.0


@dataclass
class DatasetStatistics:
    """The normalisation artifact (`dataset_statistics.json`): state then action features."""

    features: list[FeatureStatistics]
    fingerprint: str | None = None
    embodiment: str = "default"
    embodiment_id: int = 0
    source: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- building ------------------------------------------------------------------------
    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        modes: Mapping[str, str] | None = None,
        stats_source: str = "auto",
    ) -> DatasetStatistics:
        """Stats of the state and action features of a `LeRobotDataset` (its embodiment).

        Args:
            dataset: a LeRobotDataset (anything with `.embodiment`, `.stats`, `.iter_column`, `.fingerprint`).
            modes: overrides of the embodiment's modes, by role ("state"/"action") or feature key.
            stats_source: "auto" = the dataset's metadata stats when they have what the mode needs,
                else computed; "dataset" = metadata only (error when missing); "compute" = always computed.
        """
        if stats_source not in ("auto", "dataset", "compute"):
            raise DataError(f"stats_source must be 'auto', 'dataset' or 'compute', got {stats_source!r}.")
        modes = dict(modes or {})
        meta_stats = dataset.stats if stats_source != "compute" else {}
        features, sources = [], set()
        for key, (role, dim, mode) in dataset.embodiment.feature_roles().items():
            mode = modes.get(key, modes.get(role, mode))
            if mode not in MODE_NEEDS:
                raise DataError(
                    f"normalisation mode {mode!r} for '{key}' is unknown; use one of {', '.join(MODE_NEEDS)}."
                )
            have = meta_stats.get(key, {})
            needed = ("mean", "std", "min", "max", *MODE_NEEDS[mode])
            if all(k in have for k in needed):
                stats, sources = (
                    {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in have.items()},
                    sources | {"dataset"},
                )
            elif stats_source == "dataset":
                raise DataError(
                    f"the dataset's metadata has no {[k for k in needed if k not in have]} stats for '{key}' "
                    f"(mode {mode}); use stats_source='auto' or 'compute' to compute them."
                )
            else:
                stats, sources = compute_stats(lambda key=key: dataset.iter_column(key)), sources | {"computed"}
            names = dataset.features.get(key, {}).get("names")
            features.append(
                FeatureStatistics(key, role, dim, mode, stats, list(names) if isinstance(names, list) else None)
            )
        result = cls(
            features=features,
            fingerprint=dataset.fingerprint,
            embodiment=dataset.embodiment.name,
            embodiment_id=dataset.embodiment.embodiment_id,
            source="+".join(sorted(sources)),
        )
        result.check()
        return result

    # ---- access --------------------------------------------------------------------------
    def role(self, role: str) -> list[FeatureStatistics]:
        return [f for f in self.features if f.role == role]

    @property
    def state_dim(self) -> int:
        return sum(f.dim for f in self.role("state"))

    @property
    def action_dim(self) -> int:
        return sum(f.dim for f in self.role("action"))

    def affine(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated (offset, scale) of the role's features, (role_dim,) float64 each."""
        parts = [f.affine() for f in self.role(role)]
        if not parts:
            return np.zeros(0), np.ones(0)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def layout(self) -> dict[str, list[tuple[str, int]]]:
        """{"state": [(key, dim), ...], "action": [...]}: what must match between checkpoint and data."""
        return {role: [(f.key, f.dim) for f in self.role(role)] for role in ("state", "action")}

    # ---- checks ------------------------------------------------------------------------
    def check(self, where: str = "the statistics") -> None:
        """Every feature has the stats its mode needs, each of length `dim`."""
        if self.schema_version != SCHEMA_VERSION:
            raise DataError(
                f"{where} have schema_version {self.schema_version}; this vla reads version {SCHEMA_VERSION}. "
                "Recompute them (processor.fit on the dataset) or upgrade vla."
            )
        for f in self.features:
            if f.role not in ("state", "action") or f.mode not in MODE_NEEDS:
                raise DataError(
                    f"{where}: feature '{f.key}' has role {f.role!r} / mode {f.mode!r}; the file is corrupt."
                )
            for name in MODE_NEEDS[f.mode]:
                value = f.stats.get(name)
                if value is None or np.asarray(value).reshape(-1).shape != (f.dim,):
                    got = "missing" if value is None else f"of length {np.asarray(value).size}"
                    raise DataError(
                        f"{where}: '{f.key}' ({f.role}, dim {f.dim}, mode {f.mode}) needs '{name}' of length {f.dim}, "
                        f"but it is {got}. Recompute the statistics."
                    )
                if not np.all(np.isfinite(value)):
                    raise DataError(f"{where}: '{f.key}' has non-finite '{name}' values; recompute the statistics.")

    def validate_against(
        self,
        expected: DatasetStatistics | Mapping[str, Sequence[tuple[str, int]]],
        *,
        max_state_dim: int | None = None,
        max_action_dim: int | None = None,
        what: str = "the checkpoint",
    ) -> None:
        """Raise DataError naming every state/action feature whose name or dim differs from
        `expected` (another artifact, or {"state": [(key, dim)], "action": [...]}), or when the
        dims exceed the model's max dims."""
        want = expected.layout() if isinstance(expected, DatasetStatistics) else expected
        have = self.layout()
        problems = []
        for role in ("state", "action"):
            w, h = [tuple(x) for x in want.get(role, [])], have[role]
            if w != h:
                problems.append(f"{role} features are {_fmt(h)} here but {_fmt(w)} in {what}")
        for role, limit in (("state", max_state_dim), ("action", max_action_dim)):
            dim = sum(d for _, d in have[role])
            if limit is not None and dim > limit:
                problems.append(f"the {role} has {dim} dims, more than the model's max_{role}_dim={limit}")
        if problems:
            raise DataError(
                "the normalisation statistics do not match: " + "; ".join(problems) + ". Use the dataset and "
                "embodiment spec the checkpoint was trained with, or fine-tune a new checkpoint on this data."
            )

    # ---- files -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "dataset_fingerprint": self.fingerprint,
            "embodiment": self.embodiment,
            "embodiment_id": self.embodiment_id,
            "source": self.source,
            "features": {
                f.key: {
                    "role": f.role,
                    "dim": f.dim,
                    "mode": f.mode,
                    "names": f.names,
                    **{k: np.asarray(v, dtype=np.float64).reshape(-1).tolist() for k, v in f.stats.items()},
                }
                for f in self.features
            },
            **self.extra,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "the statistics") -> DatasetStatistics:
        try:
            version = int(raw["schema_version"])
            features = []
            for key, entry in raw["features"].items():
                stats = {
                    k: np.asarray(v, dtype=np.float64)
                    for k, v in entry.items()
                    if k not in ("role", "dim", "mode", "names")
                }
                features.append(
                    FeatureStatistics(key, entry["role"], int(entry["dim"]), entry["mode"], stats, entry.get("names"))
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where} are malformed ({type(exc).__name__}: {exc}); recompute them.") from None
        known = {"schema_version", "dataset_fingerprint", "embodiment", "embodiment_id", "source", "features"}
        result = cls(
            features=features,
            fingerprint=raw.get("dataset_fingerprint"),
            embodiment=raw.get("embodiment", "default"),
            embodiment_id=int(raw.get("embodiment_id", 0)),
            source=raw.get("source", ""),
            schema_version=version,
            extra={k: v for k, v in raw.items() if k not in known},
        )
        result.check(where)
        return result

    def save(self, path: str | Path) -> Path:
        """Write JSON to `path` (a directory gets `dataset_statistics.json`)."""
        path = Path(path)
        if path.is_dir():
            path = path / STATS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DatasetStatistics:
        path = Path(path)
        if path.is_dir():
            path = path / STATS_FILE
        if not path.is_file():
            raise DataError(f"{path} does not exist; the checkpoint has no normalisation statistics.")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); the checkpoint is corrupt.") from None
        return cls.from_dict(raw, where=str(path))


def _fmt(layout: Sequence[tuple[str, int]]) -> str:
    return "[" + ", ".join(f"{k} ({d})" for k, d in layout) + "]" if layout else "[]"
