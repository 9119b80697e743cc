"""LeRobotWriter: what it writes reads back identically, in lerobot's v3.0 layout, atomically."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.lerobot_writer import LeRobotWriter
from vla_core.errors import DataError

LENGTHS = (9, 6, 11, 7)  # as tests/data/conftest.py writes them


def test_written_dataset_reads_back_identically(written_dataset):
    root, source = written_dataset
    ds = LeRobotDataset(str(root), chunk_size=3)
    assert len(ds) == sum(LENGTHS) and ds.num_episodes == len(LENGTHS) and ds.fps == 15
    assert ds.tasks == ["stack the blocks", "open the drawer", "push the button"]  # order of first appearance
    video_error = []
    for i in range(len(ds)):
        sample = ds[i]
        episode, frame = sample["episode_index"], sample["frame_index"]
        want = source[(episode, frame)]
        assert sample["task"] == want["task"]
        assert sample["index"] == i and sample["timestamp"] == np.float32(frame / 15)
        np.testing.assert_array_equal(sample["state"], want["observation.state"])  # exact float32
        np.testing.assert_array_equal(sample["actions"][0], want["action"])
        np.testing.assert_array_equal(sample["images"]["observation.images.top"], want["observation.images.top"])
        wrist = sample["images"]["observation.images.wrist"].astype(np.float64)
        video_error.append(np.abs(wrist - want["observation.images.wrist"]).mean() / 255)
        # the chunk is frames t..t+2 of the same episode, padded with the last action
        steps = np.minimum(frame + np.arange(3), LENGTHS[episode] - 1)
        np.testing.assert_array_equal(sample["actions"], np.stack([source[(episode, s)]["action"] for s in steps]))
        assert sample["action_is_pad"].tolist() == (frame + np.arange(3) >= LENGTHS[episode]).tolist()
    # AV1 is lossy; the error is of the size lerobot's own AV1 fixtures show (0.006-0.012 on 64x64),
    # and well below the difference between neighbouring frames of the moving square.
    assert max(video_error) < 0.03


def test_video_frames_are_the_right_frames(written_dataset):
    """Every decoded video frame is closer to its own source frame than to any other frame
    of the file (no off-by-one across the episodes sharing one mp4)."""
    root, source = written_dataset
    ds = LeRobotDataset(str(root))
    keys = sorted(source)
    sources = np.stack([source[k]["observation.images.wrist"] for k in keys]).astype(np.float64)
    for i in range(len(ds)):
        sample = ds[i]
        decoded = sample["images"]["observation.images.wrist"].astype(np.float64)
        errors = np.abs(sources - decoded).mean(axis=(1, 2, 3))
        assert keys[int(errors.argmin())] == (sample["episode_index"], sample["frame_index"])


def test_layout_is_lerobot_v30(written_dataset):
    root, _ = written_dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "toy_arm"
    assert info["total_episodes"] == len(LENGTHS) and info["total_frames"] == sum(LENGTHS) and info["total_tasks"] == 3
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert set(info["features"]) >= {"timestamp", "frame_index", "episode_index", "index", "task_index"}
    assert info["features"]["observation.images.wrist"]["info"]["video.codec"] == "av1"
    # one data file (episodes as row groups) and one mp4 shared by all episodes
    data = pq.ParquetFile(root / "data/chunk-000/file-000.parquet")
    assert data.metadata.num_rows == sum(LENGTHS) and data.metadata.num_row_groups == len(LENGTHS)
    schema = data.schema_arrow
    assert str(schema.field("observation.state").type) == "fixed_size_list<element: float>[5]"
    assert str(schema.field("observation.images.top").type) == "struct<bytes: binary, path: string>"
    assert "observation.images.wrist" not in schema.names
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.top"] == {"_type": "Image"}
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    starts = np.cumsum((0, *LENGTHS))
    for ep, row in enumerate(episodes):
        assert row["episode_index"] == ep and row["length"] == LENGTHS[ep]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (starts[ep], starts[ep + 1])
        assert row["videos/observation.images.wrist/from_timestamp"] == pytest.approx(starts[ep] / 15)
        assert row["videos/observation.images.wrist/to_timestamp"] == pytest.approx(starts[ep + 1] / 15)
        assert row["stats/action/count"] == [LENGTHS[ep]]
    # tasks.parquet is a pandas frame indexed by the task string, as lerobot writes it
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    assert tasks.column("__index_level_0__").to_pylist()[0] == "stack the blocks"


def test_meta_stats_equal_numpys(written_dataset):
    root, source = written_dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    frames = [source[k] for k in sorted(source)]
    for key in ("observation.state", "action"):
        values = np.stack([f[key] for f in frames]).astype(np.float64)
        np.testing.assert_allclose(stats[key]["mean"], values.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats[key]["std"], values.std(0), rtol=1e-10)
        np.testing.assert_array_equal(stats[key]["min"], values.min(0))
        np.testing.assert_array_equal(stats[key]["max"], values.max(0))
        for name, q in (("q01", 0.01), ("q50", 0.5), ("q99", 0.99)):
            np.testing.assert_allclose(stats[key][name], np.quantile(values, q, axis=0), rtol=1e-12)
        assert stats[key]["count"] == [len(frames)]
    for camera in ("observation.images.top", "observation.images.wrist"):
        pixels = np.stack([f[camera] for f in frames]).reshape(-1, 3) / 255.0
        got = {k: np.asarray(v).reshape(-1) for k, v in stats[camera].items()}
        np.testing.assert_allclose(got["mean"], pixels.mean(0), rtol=1e-12)
        np.testing.assert_allclose(got["std"], pixels.std(0), rtol=1e-10)
        for name, q in (("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q99", 0.99)):
            np.testing.assert_allclose(got[name], np.quantile(pixels, q, axis=0), rtol=1e-12, atol=1e-15)
        assert got["count"].tolist() == [len(frames)]


def test_h264_and_inline_only_datasets(tmp_path, make_frame, writer_features):
    features = dict(writer_features)
    with LeRobotWriter.create(tmp_path / "h264", fps=10, features=features, video_codec="h264") as writer:
        for frame in range(5):
            writer.add_frame(make_frame(0, frame))
        writer.save_episode()
    ds = LeRobotDataset(str(tmp_path / "h264"))
    for i in range(5):
        source = make_frame(0, i)["observation.images.wrist"].astype(np.float64)
        assert np.abs(ds[i]["images"]["observation.images.wrist"] - source).mean() / 255 < 0.03
    features["observation.images.wrist"] = {"dtype": "image", "shape": [32, 32, 3]}
    with LeRobotWriter.create(tmp_path / "png", fps=10, features=features) as writer:
        writer.add_frame(make_frame(1, 0))
        writer.save_episode()
    info = json.loads((tmp_path / "png/meta/info.json").read_text())
    assert info["video_path"] is None and not (tmp_path / "png/videos").exists()
    np.testing.assert_array_equal(
        LeRobotDataset(str(tmp_path / "png"))[0]["images"]["observation.images.wrist"],
        make_frame(1, 0)["observation.images.wrist"],
    )


def test_files_roll_over_at_the_size_limit(tmp_path, make_frame, writer_features):
    writer = LeRobotWriter.create(
        tmp_path / "ds", fps=10, features=writer_features, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6
    )
    for episode in range(3):
        for frame in range(4):
            writer.add_frame(make_frame(episode, frame))
        writer.save_episode()
    writer.finalize()
    assert len(list((tmp_path / "ds/data/chunk-000").glob("file-*.parquet"))) == 3
    assert len(list((tmp_path / "ds/videos/observation.images.wrist/chunk-000").glob("file-*.mp4"))) == 3
    ds = LeRobotDataset(str(tmp_path / "ds"))
    for i in (0, 5, 11):
        sample = ds[i]
        np.testing.assert_array_equal(sample["state"], make_frame(i // 4, i % 4)["observation.state"])
        assert sample["images"]["observation.images.wrist"].shape == (32, 32, 3)


def test_nothing_is_left_on_disk_when_aborted(tmp_path, make_frame, writer_features):
    root = tmp_path / "ds"
    with (
        pytest.raises(RuntimeError, match="robot disconnected"),
        LeRobotWriter.create(root, fps=10, features=writer_features) as writer,
    ):
        writer.add_frame(make_frame(0, 0))
        writer.save_episode()
        raise RuntimeError("robot disconnected")
    assert list(tmp_path.iterdir()) == []  # neither root nor its temporary sibling


def test_existing_root_is_kept_unless_overwrite(tmp_path, make_frame, writer_features):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        LeRobotWriter.create(root, fps=10, features=writer_features)
    writer = LeRobotWriter.create(root, fps=10, features=writer_features, overwrite=True)
    writer.add_frame(make_frame(0, 0))
    writer.save_episode()
    assert (root / "keep.txt").exists()  # replaced only on finalize
    writer.finalize()
    assert not (root / "keep.txt").exists() and LeRobotDataset(str(root))[0]["frame_index"] == 0


def test_bad_frames_and_calls(tmp_path, make_frame, writer_features):
    writer = LeRobotWriter.create(tmp_path / "ds", fps=10, features=writer_features)
    frame = make_frame(0, 0)
    with pytest.raises(DataError, match=r"missing \['action'\]"):
        writer.add_frame({k: v for k, v in frame.items() if k != "action"})
    with pytest.raises(DataError, match="task"):
        writer.add_frame({k: v for k, v in frame.items() if k != "task"})
    with pytest.raises(DataError, match=r"'observation.state' has shape \[4\], expected \[5\]"):
        writer.add_frame({**frame, "observation.state": np.zeros(4)})
    with pytest.raises(DataError, match="shape"):
        writer.add_frame({**frame, "observation.images.top": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(DataError, match="no frames"):
        writer.save_episode()
    writer.add_frame(frame)
    with pytest.raises(DataError, match="unsaved frames"):
        writer.finalize()
    writer.clear_episode()
    with pytest.raises(DataError, match="no episode was saved"):
        writer.finalize()
    writer.abort()
    with pytest.raises(DataError, match="dtype"):
        LeRobotWriter.create(tmp_path / "x", fps=10, features={"a": {"dtype": "string", "shape": [1]}})
    with pytest.raises(DataError, match="added by the writer"):
        LeRobotWriter.create(tmp_path / "x", fps=10, features={"timestamp": {"dtype": "float32", "shape": [1]}})
