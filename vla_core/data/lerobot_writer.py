"""`LeRobotWriter`: write a LeRobot v3.0 dataset (for generated demos and converted robot logs).

    writer = LeRobotWriter.create("data/my_robot", fps=10, robot_type="so100", features={
        "observation.images.top": {"dtype": "image", "shape": [64, 64, 3]},   # inline PNG; "video" = mp4
        "observation.state": {"dtype": "float32", "shape": [6], "names": ["j0", ...]},
        "action": {"dtype": "float32", "shape": [6]},
    })
    for episode in episodes:
        for step in episode:
            writer.add_frame({"observation.images.top": rgb, "observation.state": q, "action": a,
                              "task": "pick up the cube"})
        writer.save_episode()
    writer.finalize()

The layout is lerobot 0.4's: data/chunk-XXX/file-YYY.parquet (episodes appended as row
groups until `data_files_size_in_mb`), one mp4 per video camera shared by consecutive
episodes (`videos/<key>/from_timestamp` says where an episode starts), meta/info.json,
meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet (with per-episode stats) and
meta/stats.json. The dataset is written into a hidden sibling directory and renamed onto
`root` by `finalize()`, so `root` is either complete or absent; `abort()` (or an exception
inside `with LeRobotWriter.create(...) as writer:`) removes the partial copy.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.atomic import atomic_directory
from vla_core.data.images import as_uint8_hwc, encode_png
from vla_core.data.lerobot_meta import EPISODES_DIR, INFO_PATH, STATS_PATH, TASKS_PARQUET
from vla_core.data.stats import QUANTILES, compute_stats
from vla_core.data.video import VideoAppender, VideoEncoder
from vla_core.errors import DataError, VLAError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
DEFAULT_FEATURE_SPECS: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


class LeRobotWriter:
    """Writes one LeRobot v3.0 dataset; build it with `LeRobotWriter.create(...)`."""

    def __init__(self) -> None:  # use create()
        raise TypeError("use LeRobotWriter.create(root, fps, features, robot_type)")

    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: dict[str, dict[str, Any]],
        robot_type: str | None = None,
        *,
        video_codec: str = "libsvtav1",
        video_pix_fmt: str = "yuv420p",
        video_gop: int = 2,
        video_crf: int | None = 30,
        chunks_size: int = 1000,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
        overwrite: bool = False,
    ) -> LeRobotWriter:
        """Start a dataset at `root` (written atomically on `finalize`).

        Args:
            root: the dataset directory to create.
            fps: frames per second of every episode.
            features: {key: {"dtype", "shape", "names"?}}; dtype "image" (inline PNG), "video"
                (mp4) with shape [H, W, 3], or a numeric dtype with shape [d]. timestamp,
                frame_index, episode_index, index and task_index are added.
            robot_type: free text stored in info.json.
            video_codec: PyAV encoder for "video" features (libsvtav1 = AV1 as lerobot; h264 also works).
            video_pix_fmt / video_gop / video_crf: encoder settings (lerobot's defaults).
            chunks_size: files per chunk directory.
            data_files_size_in_mb / video_files_size_in_mb: start a new file past this size.
            overwrite: replace an existing dataset at `root` (on finalize).
        """
        root = Path(root)
        if root.exists() and not overwrite:
            raise DataError(f"'{root}' already exists; choose a new root or pass overwrite=True to replace it.")
        if fps <= 0:
            raise DataError(f"fps must be positive, got {fps}.")
        self = object.__new__(cls)
        self.root, self.fps, self.robot_type = root, int(fps), robot_type
        self.features = self._check_features(features)
        self.video_settings = {"codec": video_codec, "pix_fmt": video_pix_fmt, "gop": video_gop, "crf": video_crf}
        self.chunks_size = chunks_size
        self.data_limit = data_files_size_in_mb * 2**20
        self.video_limit = video_files_size_in_mb * 2**20
        self._stack = contextlib.ExitStack()
        self.tmp: Path = self._stack.enter_context(atomic_directory(root))
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.total_frames = 0
        self._lowdim: dict[str, list[np.ndarray]] = {k: [] for k in self._lowdim_keys()}
        # per episode, per camera: (3, 256) uint8 histograms and the frame count, for exact image stats
        self._image_hist: dict[str, list[tuple[np.ndarray, int]]] = {k: [] for k in self.image_keys + self.video_keys}
        self._data_writer: Any = None
        self._data_file = (0, 0)
        self._videos: dict[str, tuple[VideoAppender, int, int]] = {}  # key -> (current file, chunk, file index)
        self._finished = False
        self._reset_episode()
        return self

    # ---- features ------------------------------------------------------------------------
    @staticmethod
    def _check_features(features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, spec in features.items():
            if key in DEFAULT_FEATURE_SPECS or key == "task":
                raise DataError(f"feature '{key}' is added by the writer; remove it from `features`.")
            dtype, shape = spec.get("dtype"), list(spec.get("shape") or [])
            if dtype in ("image", "video"):
                if len(shape) != 3 or shape[2] != 3:
                    raise DataError(f"image feature '{key}' needs shape [H, W, 3], got {shape}.")
                names = spec.get("names") or ["height", "width", "channels"]
            elif dtype in NUMERIC_DTYPES:
                if len(shape) != 1 or shape[0] < 1:
                    raise DataError(f"feature '{key}' needs a 1-D shape [d], got {shape}.")
                names = spec.get("names")
            else:
                raise DataError(
                    f"feature '{key}' has dtype {dtype!r}; use 'image', 'video' or one of {', '.join(NUMERIC_DTYPES)}."
                )
            out[key] = {"dtype": dtype, "shape": shape, "names": names}
        return out

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "image"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    def _lowdim_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in NUMERIC_DTYPES] + list(DEFAULT_FEATURE_SPECS)

    # ---- frames and episodes -------------------------------------------------------------
    def _reset_episode(self) -> None:
        self._frames: dict[str, list[Any]] = {k: [] for k in self.features}
        self._hist = {k: np.zeros((3, 256), dtype=np.int64) for k in self.image_keys + self.video_keys}
        self._frame_tasks: list[str] = []
        self._timestamps: list[float] = []

    @property
    def episode_length(self) -> int:
        """Frames added to the current (unsaved) episode."""
        return len(self._timestamps)

    def add_frame(self, frame: dict[str, Any], task: str | None = None, timestamp: float | None = None) -> None:
        """Add one frame to the current episode: a value for every feature, and the task
        (instruction) as `frame["task"]` or `task`. The timestamp defaults to frame_index / fps."""
        self._check_open()
        task = task if task is not None else frame.get("task")
        if not isinstance(task, str) or not task:
            raise DataError("add_frame needs the task (instruction) string, as frame['task'] or task=...")
        missing = [k for k in self.features if k not in frame]
        extra = [k for k in frame if k not in self.features and k != "task"]
        if missing or extra:
            raise DataError(
                f"frame keys do not match the features: missing {missing}, unexpected {extra}. Features: "
                f"{', '.join(self.features)}."
            )
        for key, spec in self.features.items():
            value = frame[key]
            if spec["dtype"] in ("image", "video"):
                image = as_uint8_hwc(value, key, spec["shape"])
                self._frames[key].append(encode_png(image) if spec["dtype"] == "image" else image)
                for c in range(3):
                    self._hist[key][c] += np.bincount(image[..., c].reshape(-1), minlength=256)
            else:
                array = np.asarray(value, dtype=spec["dtype"]).reshape(-1)
                if array.shape != (spec["shape"][0],):
                    raise DataError(f"feature '{key}' has shape {list(np.shape(value))}, expected {spec['shape']}.")
                self._frames[key].append(array)
        self._frame_tasks.append(task)
        self._timestamps.append(self.episode_length / self.fps if timestamp is None else float(timestamp))

    def clear_episode(self) -> None:
        """Drop the frames of the current episode (e.g. a failed demonstration)."""
        self._reset_episode()

    def save_episode(self) -> int:
        """Write the current episode; returns its episode_index."""
        import pyarrow as pa

        self._check_open()
        length = self.episode_length
        if length == 0:
            raise DataError("save_episode: the episode has no frames; call add_frame first.")
        ep = len(self.episodes)
        for task in self._frame_tasks:
            self.tasks.setdefault(task, len(self.tasks))
        columns: dict[str, np.ndarray] = {k: np.stack(self._frames[k]) for k in self.features if k in self._lowdim}
        columns["timestamp"] = np.asarray(self._timestamps, dtype=np.float32)
        columns["frame_index"] = np.arange(length, dtype=np.int64)
        columns["episode_index"] = np.full(length, ep, dtype=np.int64)
        columns["index"] = np.arange(self.total_frames, self.total_frames + length, dtype=np.int64)
        columns["task_index"] = np.array([self.tasks[t] for t in self._frame_tasks], dtype=np.int64)
        record: dict[str, Any] = {
            "episode_index": ep,
            "tasks": list(dict.fromkeys(self._frame_tasks)),
            "length": length,
        }
        arrays = {}
        for key in self.features:
            if key in columns:
                arrays[key] = _arrow_column(columns[key], self.features[key])
            elif self.features[key]["dtype"] == "image":
                arrays[key] = pa.StructArray.from_arrays(
                    [pa.array(self._frames[key], pa.binary()), pa.array([f"frame_{i:06d}.png" for i in range(length)])],
                    names=["bytes", "path"],
                )
        for key, spec in DEFAULT_FEATURE_SPECS.items():
            arrays[key] = _arrow_column(columns[key], spec)
        table = pa.table(arrays)
        record.update(self._append_data(table))
        record["dataset_from_index"] = self.total_frames
        record["dataset_to_index"] = self.total_frames + length
        for key in self.video_keys:
            record.update(self._append_video(key, self._frames[key]))
        record.update(self._episode_stats(columns))
        for key in self._lowdim:
            self._lowdim[key].append(columns[key].reshape(length, -1))
        self.episodes.append(record)
        self.total_frames += length
        self._reset_episode()
        return ep

    def _append_data(self, table: Any) -> dict[str, int]:
        import pyarrow.parquet as pq

        chunk, file = self._data_file
        path = self.tmp / DATA_PATH.format(chunk_index=chunk, file_index=file)
        if self._data_writer is not None and _size(path) >= self.data_limit:
            self._data_writer.close()
            self._data_writer = None
            chunk, file = self._data_file = _next_file(chunk, file, self.chunks_size)
            path = self.tmp / DATA_PATH.format(chunk_index=chunk, file_index=file)
        if self._data_writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            schema = table.schema.with_metadata({"huggingface": json.dumps(_hf_metadata(self.features))})
            self._data_writer = pq.ParquetWriter(path, schema)
        self._data_writer.write_table(table.replace_schema_metadata(self._data_writer.schema.metadata))
        return {"data/chunk_index": chunk, "data/file_index": file}

    def _append_video(self, key: str, frames: list[np.ndarray]) -> dict[str, Any]:
        """Encode the episode on its own (a fresh encoder, flushed at its end), then append its
        packets to the camera's current shared mp4; start a new file past the size limit."""
        chunk, file = 0, 0
        current = self._videos.get(key)
        if current is not None:
            appender, chunk, file = current
            if appender.num_bytes >= self.video_limit:
                appender.close()
                chunk, file = _next_file(chunk, file, self.chunks_size)
                current = None
        if current is None:
            path = self.tmp / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            self._videos[key] = (VideoAppender(path, self.fps), chunk, file)
        appender = self._videos[key][0]
        height, width, _ = self.features[key]["shape"]
        episode_file = self.tmp / f".episode-{key}.mp4"
        s = self.video_settings
        encoder = VideoEncoder(episode_file, self.fps, width, height, s["codec"], s["pix_fmt"], s["gop"], s["crf"])
        try:
            for image in frames:
                encoder.add(image)
        finally:
            encoder.close()
        start = appender.append(episode_file, len(frames))
        episode_file.unlink()
        return {
            f"videos/{key}/chunk_index": chunk,
            f"videos/{key}/file_index": file,
            f"videos/{key}/from_timestamp": start,
            f"videos/{key}/to_timestamp": appender.num_frames / self.fps,
        }

    def _episode_stats(self, columns: dict[str, np.ndarray]) -> dict[str, Any]:
        """stats/<key>/<stat> of one episode: exact for numbers; images per channel in [0, 1]
        from a 256-bin histogram (exact for uint8), shaped (3, 1, 1) as lerobot's."""
        out: dict[str, Any] = {}
        for key, values in columns.items():
            for name, value in compute_stats([values.reshape(len(values), -1)]).items():
                out[f"stats/{key}/{name}"] = np.asarray(value).reshape(-1).tolist()
        for key, hist in self._hist.items():
            self._image_hist[key].append((hist, self.episode_length))
            out.update({f"stats/{key}/{k}": v for k, v in _image_stats(hist, self.episode_length).items()})
        return out

    # ---- finishing -----------------------------------------------------------------------
    def finalize(self) -> Path:
        """Write meta/ (info, tasks, episodes, stats), close files and move the dataset onto `root`."""
        self._check_open()
        if self.episode_length:
            raise DataError(
                f"finalize: the current episode has {self.episode_length} unsaved frames; call save_episode() "
                "or clear_episode() first."
            )
        if not self.episodes:
            raise DataError("finalize: no episode was saved; a dataset needs at least one.")
        try:
            self._close_files()
            self._write_meta()
        except BaseException as exc:
            self._finished = True
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._finished = True
        self._stack.close()  # renames the temporary directory onto root
        return self.root

    def abort(self) -> None:
        """Discard everything written so far; `root` is left as it was."""
        if self._finished:
            return
        self._finished = True
        with contextlib.suppress(Exception):
            self._close_files()
        self._stack.__exit__(VLAError, VLAError("aborted"), None)

    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._finished:
            self.finalize()

    def _check_open(self) -> None:
        if self._finished:
            raise DataError("this LeRobotWriter is finalized or aborted; create a new one.")

    def _close_files(self) -> None:
        if self._data_writer is not None:
            self._data_writer.close()
            self._data_writer = None
        for appender, _, _ in self._videos.values():
            appender.close()
        self._videos = {}

    def _write_meta(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = self.tmp / "meta"
        (meta / EPISODES_DIR.split("/", 1)[1] / "chunk-000").mkdir(parents=True, exist_ok=True)
        features = {k: dict(v) for k, v in self.features.items()}
        for key in self.video_keys:
            height, width, channels = features[key]["shape"]
            features[key]["info"] = {
                "video.height": height,
                "video.width": width,
                "video.codec": _codec_name(self.video_settings["codec"]),
                "video.pix_fmt": self.video_settings["pix_fmt"],
                "video.is_depth_map": False,
                "video.fps": self.fps,
                "video.channels": channels,
                "has_audio": False,
            }
        features.update({k: dict(v) for k, v in DEFAULT_FEATURE_SPECS.items()})
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_limit / 2**20,
            "video_files_size_in_mb": self.video_limit / 2**20,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": features,
        }
        (self.tmp / INFO_PATH).write_text(json.dumps(info, indent=4))
        _write_tasks(self.tmp / TASKS_PARQUET, self.tasks)
        rows = [{**r, "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0} for r in self.episodes]
        pq.write_table(pa.Table.from_pylist(rows), self.tmp / EPISODES_DIR / "chunk-000/file-000.parquet")
        (self.tmp / STATS_PATH).write_text(json.dumps(self._dataset_stats(), indent=4))

    def _dataset_stats(self) -> dict[str, dict[str, list[Any]]]:
        """meta/stats.json: numbers over all frames (exact quantiles); images from the
        pooled per-episode histograms (exact)."""
        out: dict[str, dict[str, list[Any]]] = {}
        for key, parts in self._lowdim.items():
            out[key] = {name: np.asarray(v).reshape(-1).tolist() for name, v in compute_stats(parts).items()}
        for key, episodes in self._image_hist.items():
            hist = np.sum([h for h, _ in episodes], axis=0)
            out[key] = _image_stats(hist, sum(n for _, n in episodes))
        return out


# ---- helpers ---------------------------------------------------------------------------------
def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    file += 1
    return (chunk + 1, 0) if file >= chunks_size else (chunk, file)


def _arrow_column(values: np.ndarray, spec: dict[str, Any]) -> Any:
    """Shape [1] -> a scalar column; shape [d] -> fixed_size_list<dtype>[d] (as lerobot writes)."""
    import pyarrow as pa

    values = np.asarray(values, dtype=spec["dtype"])
    if spec["shape"] == [1]:
        return pa.array(values.reshape(-1))
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, spec["shape"][0])


def _hf_metadata(features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `huggingface` schema metadata that lets `datasets` (and so lerobot) type the columns."""
    out: dict[str, Any] = {}
    for key, spec in {**features, **DEFAULT_FEATURE_SPECS}.items():
        if spec["dtype"] == "video":
            continue
        if spec["dtype"] == "image":
            out[key] = {"_type": "Image"}
        elif spec["shape"] == [1]:
            out[key] = {"dtype": spec["dtype"], "_type": "Value"}
        else:
            out[key] = {
                "feature": {"dtype": spec["dtype"], "_type": "Value"},
                "length": spec["shape"][0],
                "_type": "List",
            }
    return {"info": {"features": out}}


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as lerobot writes it: a pandas frame indexed by the task string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = sorted(tasks.items(), key=lambda kv: kv[1])
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "pandas_version": "2.2.0",
    }
    table = pa.table(
        {
            "task_index": pa.array([i for _, i in pairs], pa.int64()),
            "__index_level_0__": pa.array([t for t, _ in pairs]),
        }
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    pq.write_table(table, path)


def _image_stats(hist: np.ndarray, frames: int) -> dict[str, list[Any]]:
    """Per-channel image stats in [0, 1], shaped (3, 1, 1) as lerobot's, `count` = frames."""
    stats = _histogram_stats(hist)
    return {name: v.reshape(3, 1, 1).tolist() for name, v in stats.items()} | {"count": [frames]}


def _histogram_stats(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats in [0, 1] from (3, 256) uint8 histograms (exact): quantiles as
    numpy's linear ones over all pixel values."""
    levels = np.arange(256) / 255.0
    count = hist.sum(axis=1).astype(np.float64)
    mean = (hist * levels).sum(axis=1) / count
    var = (hist * (levels - mean[:, None]) ** 2).sum(axis=1) / count
    cdf = np.cumsum(hist, axis=1)
    quantiles = {}
    for name, q in QUANTILES.items():
        values = []
        for c in range(3):
            pos = q * (count[c] - 1)
            lo, frac = int(np.floor(pos)), pos - np.floor(pos)
            v_lo = np.searchsorted(cdf[c], lo + 1)  # value of the (lo)-th order statistic (0-based)
            v_hi = np.searchsorted(cdf[c], min(lo + 2, count[c]))
            values.append((v_lo + frac * (v_hi - v_lo)) / 255.0)
        quantiles[name] = np.array(values)
    nonzero = [np.nonzero(h)[0] for h in hist]
    return {
        "min": np.array([nz[0] for nz in nonzero]) / 255.0,
        "max": np.array([nz[-1] for nz in nonzero]) / 255.0,
        "mean": mean,
        "std": np.sqrt(var),
        **quantiles,
    }


def _codec_name(codec: str) -> str:
    return {"libsvtav1": "av1", "libx264": "h264", "libx265": "hevc"}.get(codec, codec)
