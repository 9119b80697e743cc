"""`LeRobotDataset`: a LeRobot v2.1 / v3.0 dataset on local disk as raw samples (no `lerobot` needed).

A raw sample (what `dataset[i]` returns; the processor turns it into model inputs)::

    {"images": {camera_key: uint8 (H, W, 3)},      # cameras chosen by the embodiment spec, in order
     "state": float32 (state_dim,),                 # its state keys concatenated
     "actions": float32 (T, action_dim),            # frames t, t+1, ..., its action keys concatenated
     "action_is_pad": bool (T,),                    # True past the episode end (rows repeat the last action)
     "task": str, "episode_index": int, "frame_index": int, "index": int, "timestamp": float,
     "embodiment_id": int}

With observation history (`delta_timestamps` on the cameras and state keys, T_obs offsets
ending at 0) images are uint8 (T_obs, H, W, 3), the state is (T_obs, state_dim), oldest
frame first, and `observation_is_pad` (T_obs,) is True for frames before the episode start
(their rows repeat the episode's first frame, as lerobot's `<key>_is_pad`).

Low-dimensional columns (state, action, timestamps, indices) of the selected episodes are
read once into memory; inline PNG columns are read per data file on first use (an LRU of
files); video frames are decoded on demand by a `VideoFrameReader` (seek + forward decode,
frame cache).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_core.data.delta_timestamps import observation_history_length, query_indices, split_delta_timestamps
from vla_core.data.embodiment import EmbodimentSpec
from vla_core.data.images import decode_png
from vla_core.data.lerobot_checks import check_image_shape, check_row_counts, check_vector_width
from vla_core.data.lerobot_meta import DEFAULT_FEATURES, EpisodeInfo, LeRobotMetadata, read_metadata
from vla_core.data.video import VideoFrameReader
from vla_core.errors import DataError

#: Data files whose image columns are kept in memory (compressed PNG bytes).
IMAGE_FILE_CACHE = 4


class LeRobotDataset(torch.utils.data.Dataset):
    """A local LeRobot dataset (v2.1 or v3.0) with action chunks, as raw samples.

    Args:
        root: directory of the dataset (holds meta/info.json, data/, and videos/ if any).
        embodiment: embodiment spec: a YAML/JSON file path or an inline mapping (cameras, state,
            action, norms, embodiment_id); None = every camera, observation.state and action.
        chunk_size: actions per sample (the model's horizon T): frames t, t+1, ..., t+T-1 of the episode.
        delta_timestamps: lerobot's {key: [offsets in seconds]}, multiples of 1/fps. On the action keys an
            alternative to chunk_size (e.g. [0, 0.1, 0.2]); on every camera and state key the observation history
            (the same offsets for all, strictly increasing, ending at 0, e.g. [-0.2, -0.1, 0.0]).
        episodes: episode indices to use; None = all.
        tolerance_s: largest allowed gap between a requested time and a decoded video frame (and for delta_timestamps).
        video_cache_mb: memory for decoded video frames (per DataLoader worker).
    """

    def __init__(
        self,
        root: str,
        embodiment: str | dict[str, Any] | None = None,
        chunk_size: int | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        episodes: list[int] | None = None,
        tolerance_s: float = 1e-4,
        video_cache_mb: float = 256.0,
    ) -> None:
        self.root = Path(root)
        self.meta: LeRobotMetadata = read_metadata(self.root)
        self.tolerance_s = tolerance_s
        where = f"the dataset at '{self.root}'"
        self.embodiment: EmbodimentSpec = EmbodimentSpec.load(embodiment).resolve(self.meta.features, where)
        self.episodes: list[EpisodeInfo] = self._select_episodes(episodes)
        self.offsets, self.history_offsets = self._offsets(chunk_size, delta_timestamps)
        self._load_columns()
        self._videos = VideoFrameReader(tolerance_s=tolerance_s, cache_mb=video_cache_mb)
        self._image_columns: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._stats: dict[str, dict[str, np.ndarray]] | None = None
        self._check_image_shapes()

    @staticmethod
    def observation_history_length(spec: dict[str, Any]) -> int:
        """T_obs that a `data` spec asks for (0 = no history), from the config alone
        (vla_core.config.history checks it against the head)."""
        return observation_history_length(spec)

    # ---- setup ---------------------------------------------------------------------------
    def _select_episodes(self, wanted: list[int] | None) -> list[EpisodeInfo]:
        if wanted is None:
            return list(self.meta.episodes)
        by_index = {e.index: e for e in self.meta.episodes}
        missing = [i for i in wanted if i not in by_index]
        if missing:
            raise DataError(
                f"episodes {missing} are not in the dataset at '{self.root}' (it has episodes "
                f"{min(by_index)}..{max(by_index)}, {len(by_index)} in all). Fix `data.episodes`."
            )
        return [by_index[i] for i in sorted(set(wanted))]

    def _offsets(
        self, chunk_size: int | None, delta_timestamps: dict[str, list[float]] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame offsets relative to the current frame: of the action chunk, (T,) int, and of
        the observation history, (T_obs,) int or None without history."""
        actions, history = None, None
        if delta_timestamps is not None:
            observation_keys = [*(self.embodiment.cameras or []), *self.embodiment.state_keys]
            actions, history = split_delta_timestamps(
                delta_timestamps, self.embodiment.action_keys, observation_keys, self.meta.fps, self.tolerance_s
            )
        if actions is None:
            size = 1 if chunk_size is None else chunk_size
            if size < 1:
                raise DataError(f"chunk_size must be at least 1, got {size}.")
            return np.arange(size), history
        if chunk_size is not None and chunk_size != len(actions):
            raise DataError(
                f"chunk_size={chunk_size} but delta_timestamps gives {len(actions)} action offsets; set only one "
                "of them."
            )
        return actions, history

    def _load_columns(self) -> None:
        import pyarrow.parquet as pq

        keys = list(dict.fromkeys([*self.embodiment.state_keys, *self.embodiment.action_keys, *DEFAULT_FEATURES]))
        files = list(dict.fromkeys(e.data_file for e in self.episodes))
        wanted = np.array([e.index for e in self.episodes])
        parts: dict[str, list[np.ndarray]] = {k: [] for k in [*keys, "_file", "_row"]}
        vector_keys = {*self.embodiment.state_keys, *self.embodiment.action_keys}
        rows_per_file: dict[Path, int] = {}
        for file_id, path in enumerate(files):
            if not path.is_file():
                raise DataError(f"data file '{path}' is missing; the dataset at '{self.root}' is incomplete.")
            names = pq.read_schema(path).names
            absent = [k for k in keys if k not in names]
            if absent:
                raise DataError(
                    f"data file '{path}' has no column(s) {absent} (it has {names}); the dataset does not match its "
                    "meta/info.json."
                )
            table = pq.read_table(path, columns=keys)
            rows_per_file[path] = table.num_rows
            rows = np.nonzero(np.isin(table.column("episode_index").to_numpy(), wanted))[0]
            for key in keys:
                values = column_to_numpy(table.column(key))
                if key in vector_keys:
                    check_vector_width(path, key, values, self.meta.features[key], self.root)
                parts[key].append(values[rows])
            parts["_file"].append(np.full(len(rows), file_id))
            parts["_row"].append(rows)
        if len(self.episodes) == len(self.meta.episodes):
            check_row_counts(self.root, self.meta.info, rows_per_file, len(self.meta.episodes))
        columns = {k: np.concatenate(v) for k, v in parts.items()}
        order = np.lexsort((columns["frame_index"], columns["episode_index"]))
        self._columns = {k: v[order] for k, v in columns.items()}
        self._files = files
        episode_col = self._columns["episode_index"]
        indices, starts, counts = np.unique(episode_col, return_index=True, return_counts=True)
        expected = {e.index: e.length for e in self.episodes}
        found = dict(zip(indices.tolist(), counts.tolist(), strict=True))
        if found != expected:
            data_file = {e.index: e.data_file for e in self.episodes}
            bad = [
                f"episode {i}: {expected.get(i)} in meta/, {found.get(i, 0)} rows in '{data_file.get(i, '?')}'"
                for i in sorted(set(expected) | set(found))
                if expected.get(i) != found.get(i)
            ]
            raise DataError(
                f"the dataset at '{self.root}' is inconsistent: episode lengths in its metadata differ from the rows "
                f"of its data files ({'; '.join(bad[:8])}). Restore the data files, or fix the episode metadata."
            )
        self._starts = starts
        self._ends = starts + counts
        self._episode_ordinal = np.repeat(np.arange(len(indices)), counts)

    def _check_image_shapes(self) -> None:
        """Decode the first frame of each camera and compare its size with info.json."""
        if not len(self):
            return
        first = self.episodes[0]
        for key in self.embodiment.cameras or []:
            image = self._images(key, np.zeros(1, dtype=np.int64), 0)[0]
            if self.meta.features[key]["dtype"] == "video":
                source = f"video '{first.videos[key][0]}'"
            else:
                source = f"data file '{self._files[int(self._columns['_file'][0])]}'"
            check_image_shape(key, image, self.meta.features[key], source, self.root)

    # ---- the Dataset protocol ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self._episode_ordinal)

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} frames")
        i = int(i) % n
        ordinal = int(self._episode_ordinal[i])
        start, end = int(self._starts[ordinal]), int(self._ends[ordinal])
        query, is_pad = query_indices(i, self.offsets, start, end)
        cols = self._columns
        actions = np.concatenate(
            [cols[k][query].reshape(len(query), -1) for k in self.embodiment.action_keys], axis=1
        ).astype(np.float32)
        history: dict[str, Any] = {}
        if self.history_offsets is None:
            rows = np.array([i])
        else:
            rows, obs_pad = query_indices(i, self.history_offsets, start, end)
            history["observation_is_pad"] = obs_pad
        state = np.concatenate(
            [cols[k][rows].reshape(len(rows), -1) for k in self.embodiment.state_keys], axis=1
        ).astype(np.float32)
        images = {cam: self._images(cam, rows, ordinal) for cam in self.embodiment.cameras or []}
        if self.history_offsets is None:  # no history axis: one frame, the schema without T_obs
            state, images = state[0], {cam: frames[0] for cam, frames in images.items()}
        return {
            "images": images,
            "state": state,
            **history,
            "actions": actions,
            "action_is_pad": is_pad,
            "task": self.meta.tasks[int(cols["task_index"][i])],
            "episode_index": int(cols["episode_index"][i]),
            "frame_index": int(cols["frame_index"][i]),
            "index": int(cols["index"][i]),
            "timestamp": float(cols["timestamp"][i]),
            "embodiment_id": self.embodiment.embodiment_id,
        }

    def _images(self, key: str, rows: np.ndarray, ordinal: int) -> np.ndarray:
        """uint8 (len(rows), H, W, 3): camera `key` at sample positions `rows` of one episode.
        Video frames are read at the rows' own timestamps (lerobot's `_get_query_timestamps`:
        a clamped row reads its frame, not the requested time)."""
        if self.meta.features[key]["dtype"] == "video":
            path, start = self.episodes[ordinal].videos[key]
            times = [start + float(self._columns["timestamp"][r]) for r in rows]
            frame_indices = [int(self._columns["frame_index"][r]) for r in rows]
            episode = self.episodes[ordinal].index
            which = f"frame {frame_indices[0]}" if len(rows) == 1 else f"frames {frame_indices}"
            at = ", ".join(f"{t:.3f}" for t in times)
            where = f"camera '{key}', episode {episode}, {which} (t={at}s in the video)"
            return np.stack(self._videos.frames(path, times, where=where))
        frames = []
        for r in rows:
            file_id, row = int(self._columns["_file"][r]), int(self._columns["_row"][r])
            column = self._image_column(file_id, key)
            frames.append(decode_png(column[row].as_py(), where=f"{self._files[file_id]} row {row} column '{key}'"))
        return np.stack(frames)

    def _image_column(self, file_id: int, key: str) -> Any:
        """The `bytes` child of an inline image column of one data file (LRU-cached)."""
        import pyarrow.parquet as pq

        cached = self._image_columns.get((file_id, key))
        if cached is None:
            column = pq.read_table(self._files[file_id], columns=[key]).column(key).combine_chunks()
            cached = column.field("bytes") if hasattr(column, "field") else column
            self._image_columns[(file_id, key)] = cached
            while len(self._image_columns) > IMAGE_FILE_CACHE:
                self._image_columns.popitem(last=False)
        self._image_columns.move_to_end((file_id, key))
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_image_columns"] = OrderedDict()  # re-read in each worker rather than pickled
        return state

    # ---- description -------------------------------------------------------------------
    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """info.json's `features` (dtype, shape, names of every key)."""
        return self.meta.features

    @property
    def fps(self) -> float:
        return self.meta.fps

    @property
    def tasks(self) -> list[str]:
        """Task strings, indexed by task_index."""
        return list(self.meta.tasks)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def chunk_size(self) -> int:
        """T, the number of actions per sample."""
        return len(self.offsets)

    @property
    def n_obs_steps(self) -> int | None:
        """T_obs, the frames of observation history per sample; None without history (no time axis)."""
        return None if self.history_offsets is None else len(self.history_offsets)

    @property
    def camera_keys(self) -> list[str]:
        return list(self.embodiment.cameras or [])

    @property
    def state_dim(self) -> int:
        return self.embodiment.state_dim

    @property
    def action_dim(self) -> int:
        return self.embodiment.action_dim

    @property
    def fingerprint(self) -> str:
        """Stable id of the data (info.json + the selected episodes' lengths)."""
        return self.meta.fingerprint(self.episodes)

    def episode_range(self, episode_index: int) -> tuple[int, int]:
        """[start, end) sample positions of an episode."""
        for ordinal, ep in enumerate(self.episodes):
            if ep.index == episode_index:
                return int(self._starts[ordinal]), int(self._ends[ordinal])
        raise DataError(
            f"episode {episode_index} is not in this dataset (episodes: {[e.index for e in self.episodes]})."
        )

    def column(self, key: str) -> np.ndarray:
        """A loaded low-dimensional column (state/action keys and the default features), (N, ...)."""
        if key not in self._columns or key.startswith("_"):
            raise DataError(f"'{key}' is not a loaded column; loaded are {[k for k in self._columns if k[0] != '_']}.")
        return self._columns[key]

    def iter_column(self, key: str, batch_rows: int = 65536) -> Iterator[np.ndarray]:
        """The column in (batch_rows, dim) blocks, for streaming statistics."""
        values = self.column(key)
        values = values.reshape(len(values), -1)
        for begin in range(0, len(values), batch_rows):
            yield values[begin : begin + batch_rows]

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-feature stats (mean, std, min, max, count, and q01..q99 where known).

        From meta/stats.json (v3.0, v2.0) or pooled meta/episodes_stats.jsonl (v2.1); a state
        or action feature the metadata lacks, and every one when only some episodes are
        selected, is computed over the loaded data (exact quantiles)."""
        if self._stats is None:
            from vla_core.data.stats import compute_stats

            subset = len(self.episodes) != len(self.meta.episodes)
            stats = {} if subset else {k: dict(v) for k, v in self.meta.stats.items()}
            for key in [*self.embodiment.state_keys, *self.embodiment.action_keys]:
                if key not in stats:
                    stats[key] = compute_stats(lambda key=key: self.iter_column(key))
            self._stats = stats
        return self._stats

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset(root='{self.root}', version={self.meta.version}, episodes={self.num_episodes}, "
            f"frames={len(self)}, cameras={self.camera_keys}, state_dim={self.state_dim}, "
            f"action_dim={self.action_dim}, chunk_size={self.chunk_size}, n_obs_steps={self.n_obs_steps})"
        )


def column_to_numpy(column: Any) -> np.ndarray:
    """A pyarrow column -> numpy: (N,) for scalars, (N, D) for (fixed-size) lists."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        values = array.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(array), -1) if len(array) else values.reshape(0, 0)
    return array.to_numpy(zero_copy_only=False)
