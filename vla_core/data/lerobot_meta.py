"""Metadata of a LeRobot dataset on disk (v2.0, v2.1 and v3.0), read without `lerobot`.

v3.0: meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/chunk-*/file-*.parquet,
      data/chunk-*/file-*.parquet (many episodes per file), videos/<key>/chunk-*/file-*.mp4
      (many episodes per file; an episode starts at `videos/<key>/from_timestamp`).
v2.x: meta/info.json, meta/episodes.jsonl, meta/tasks.jsonl, meta/episodes_stats.jsonl (v2.1)
      or meta/stats.json (v2.0), one parquet (and one mp4 per camera) per episode.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.errors import DataError

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PARQUET = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
#: Features every LeRobot frame has besides the recorded ones.
DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


@dataclass
class EpisodeInfo:
    """One episode: its length, tasks, data file and, per video camera, (file, start time)."""

    index: int
    length: int
    tasks: list[str]
    data_file: Path
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)


@dataclass
class LeRobotMetadata:
    """Everything in `meta/` of a LeRobot dataset. `episodes` are sorted by index."""

    root: Path
    info: dict[str, Any]
    episodes: list[EpisodeInfo]
    tasks: list[str]
    stats: dict[str, dict[str, np.ndarray]]

    @property
    def version(self) -> str:
        return str(self.info["codebase_version"])

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") in ("image", "video")]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "image"]

    def fingerprint(self, episodes: list[EpisodeInfo] | None = None) -> str:
        """sha256 of info.json and the episode lengths: identifies the data stats were computed on."""
        eps = self.episodes if episodes is None else episodes
        payload = json.dumps(
            {"info": self.info, "episodes": [[e.index, e.length] for e in eps]}, sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_metadata(root: str | Path) -> LeRobotMetadata:
    """Read `meta/` of the dataset at `root`; DataError (naming what is missing) otherwise."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset root '{root}' does not exist. Check `data.root` (a local LeRobot dataset directory).")
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise DataError(
            f"'{root}' is not a LeRobot dataset: it has no {INFO_PATH}. A LeRobot dataset directory holds meta/ "
            "(info.json, episodes, tasks) and data/ (parquet files); point `data.root` at such a directory."
        )
    info = _read_json(info_path)
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        raise DataError(
            f"'{root}' is LeRobot format {version!r}; supported are {', '.join(SUPPORTED_VERSIONS)}. Convert it with "
            "lerobot's conversion script (lerobot/datasets/v30/convert_dataset_v21_to_v30.py)."
        )
    for key in ("fps", "features", "data_path"):
        if key not in info:
            raise DataError(f"{info_path} has no '{key}' entry; the file is corrupt or not LeRobot's info.json.")
    if version == "v3.0":
        episodes, tasks = _read_v3_episodes(root, info), _read_v3_tasks(root)
        stats = _stats_from_json(root / STATS_PATH)
    else:
        episodes, tasks = _read_v2_episodes(root, info), _read_v2_tasks(root)
        stats = _stats_from_json(root / STATS_PATH) or _aggregate_v21_stats(root / "meta/episodes_stats.jsonl")
    if not episodes:
        raise DataError(f"'{root}' has no episodes in its metadata; it is empty or was not finalized.")
    return LeRobotMetadata(root=root, info=info, episodes=episodes, tasks=tasks, stats=stats)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} could not be read ({exc}); the dataset is corrupt.") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path} is missing; a LeRobot v2.x dataset needs it. The dataset is incomplete.")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc}).") from None


# ---- v2.x ---------------------------------------------------------------------------------
def _read_v2_episodes(root: Path, info: dict[str, Any]) -> list[EpisodeInfo]:
    chunks_size = int(info.get("chunks_size", 1000))
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    episodes = []
    for row in sorted(_read_jsonl(root / "meta/episodes.jsonl"), key=lambda r: r["episode_index"]):
        ep = int(row["episode_index"])
        fmt = {"episode_chunk": ep // chunks_size, "episode_index": ep}
        videos = {key: (root / info["video_path"].format(video_key=key, **fmt), 0.0) for key in video_keys}
        episodes.append(
            EpisodeInfo(
                ep, int(row["length"]), list(row.get("tasks", [])), root / info["data_path"].format(**fmt), videos
            )
        )
    return episodes


def _read_v2_tasks(root: Path) -> list[str]:
    rows = sorted(_read_jsonl(root / "meta/tasks.jsonl"), key=lambda r: r["task_index"])
    return [str(r["task"]) for r in rows]


def _aggregate_v21_stats(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Pool per-episode stats (count-weighted mean; variance by the parallel-axis rule),
    as lerobot does in memory for v2.1 datasets."""
    if not path.is_file():
        return {}
    per_episode = [row["stats"] for row in _read_jsonl(path)]
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in per_episode[0]:
        rows = [ep[key] for ep in per_episode if key in ep]
        out[key] = pool_stats([{k: np.asarray(v, dtype=np.float64) for k, v in r.items()} for r in rows])
    return out


def pool_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine stats of disjoint parts (each with count, mean, std, min, max) into one."""
    counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
    total = counts.sum()
    w = (counts / total).reshape((-1,) + (1,) * np.asarray(parts[0]["mean"]).ndim)
    means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
    mean = (w * means).sum(0)
    stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
    var = (w * (stds**2 + (means - mean) ** 2)).sum(0)
    return {
        "mean": mean,
        "std": np.sqrt(var),
        "min": np.min(np.stack([np.asarray(p["min"], dtype=np.float64) for p in parts]), axis=0),
        "max": np.max(np.stack([np.asarray(p["max"], dtype=np.float64) for p in parts]), axis=0),
        "count": np.array([total]),
    }


# ---- v3.0 ---------------------------------------------------------------------------------
def _read_v3_episodes(root: Path, info: dict[str, Any]) -> list[EpisodeInfo]:
    import pyarrow.parquet as pq

    files = sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not files:
        raise DataError(
            f"'{root}' is LeRobot v3.0 but has no {EPISODES_DIR}/chunk-*/file-*.parquet; the dataset was not "
            "finalized (LeRobotWriter.finalize / lerobot's finalize()) or is incomplete."
        )
    rows: list[dict[str, Any]] = []
    for path in files:
        names = [n for n in pq.read_schema(path).names if not n.startswith("stats/")]
        rows.extend(pq.read_table(path, columns=names).to_pylist())
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    episodes = []
    for row in sorted(rows, key=lambda r: r["episode_index"]):
        data_file = root / info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        videos = {}
        for key in video_keys:
            video = root / info["video_path"].format(
                video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
            )
            videos[key] = (video, float(row[f"videos/{key}/from_timestamp"]))
        episodes.append(
            EpisodeInfo(int(row["episode_index"]), int(row["length"]), list(row["tasks"]), data_file, videos)
        )
    return episodes


def _read_v3_tasks(root: Path) -> list[str]:
    """meta/tasks.parquet is a pandas frame indexed by the task string, with `task_index`."""
    import pyarrow.parquet as pq

    path = root / TASKS_PARQUET
    if not path.is_file():
        raise DataError(f"{path} is missing; a LeRobot v3.0 dataset needs it. The dataset is incomplete.")
    table = pq.read_table(path)
    if "task" in table.column_names:
        task_col = "task"
    else:
        pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
        index_cols = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
        task_col = index_cols[0] if index_cols else "__index_level_0__"
    if task_col not in table.column_names or "task_index" not in table.column_names:
        raise DataError(f"{path} has no task strings or no task_index column; it is not LeRobot's tasks table.")
    pairs = sorted(zip(table.column("task_index").to_pylist(), table.column(task_col).to_pylist(), strict=True))
    return [str(task) for _, task in pairs]


def _stats_from_json(path: Path) -> dict[str, dict[str, np.ndarray]]:
    if not path.is_file():
        return {}
    raw = _read_json(path)
    return {key: {stat: np.asarray(v, dtype=np.float64) for stat, v in stats.items()} for key, stats in raw.items()}
