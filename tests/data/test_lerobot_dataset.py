"""LeRobotDataset against what lerobot itself returned for the same files (fixtures/lerobot)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.errors import DataError

# AV1 decoding is normative (every conformant decoder outputs the same YUV), so only the
# YUV -> RGB conversion may differ between ffmpeg builds; here (dav1d via PyAV, as lerobot's
# pyav backend) the per-channel means agree with lerobot's to 1e-8. A one-frame shift moves
# them by >= 0.0048 (summed over channels) in this file, far outside this tolerance.
VIDEO_MEAN_TOL = 2e-4


def channel_means(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) / 255.0).reshape(-1, 3).mean(0)


@pytest.mark.parametrize("name", ["v30_video", "v21_image"])
def test_fixture_files_are_the_ones_lerobot_wrote(name, expected, v30_video_root, v21_image_root):
    import hashlib

    root = v30_video_root if name == "v30_video" else v21_image_root
    for relative, entry in expected(name)["files"].items():
        assert hashlib.sha256((root / relative).read_bytes()).hexdigest() == entry["sha256"], relative


@pytest.mark.parametrize("name", ["v30_video", "v21_image"])
def test_metadata_matches_lerobot(name, expected, v30_video_root, v21_image_root):
    root = v30_video_root if name == "v30_video" else v21_image_root
    want = expected(name)
    ds = LeRobotDataset(str(root))
    assert ds.meta.version == want["codebase_version"]
    assert len(ds) == want["len_dataset"] and ds.num_episodes == want["num_episodes"]
    assert ds.fps == want["fps"]
    assert ds.tasks == [t["task"] for t in sorted(want["tasks"], key=lambda t: t["task_index"])]
    assert ds.camera_keys == want["camera_keys"]
    assert [e.length for e in ds.episodes] == [e["length"] for e in want["episodes"]]
    assert ds.features == want["features"]


@pytest.mark.parametrize("name", ["v30_video", "v21_image"])
def test_frames_match_lerobot_exactly(name, expected, v30_video_root, v21_image_root):
    root = v30_video_root if name == "v30_video" else v21_image_root
    want = expected(name)
    ds = LeRobotDataset(str(root))
    for index, frame in want["frames"].items():
        sample = ds[int(index)]
        assert sample["episode_index"] == frame["episode_index"]
        assert sample["frame_index"] == frame["frame_index"]
        assert sample["index"] == frame["index"]
        assert sample["task"] == frame["task"]
        assert sample["timestamp"] == np.float32(frame["timestamp"])
        assert sample["state"].dtype == np.float32 and sample["actions"].dtype == np.float32
        np.testing.assert_array_equal(sample["state"], np.float32(frame["observation.state"]))
        np.testing.assert_array_equal(sample["actions"], np.float32([frame["action"]]))  # chunk of 1
        assert sample["action_is_pad"].tolist() == [False]


def test_v21_png_images_match_lerobot_exactly(expected, v21_image_root):
    want = expected("v21_image")["decoded_images"]["n/a (images stored in parquet as PNG)"]
    ds = LeRobotDataset(str(v21_image_root))
    for index, cameras in want.items():
        sample = ds[int(index)]
        for camera, stats in cameras.items():
            image = sample["images"][camera]
            assert image.dtype == np.uint8 and list(image.shape) == [stats["shape"][1], stats["shape"][2], 3]
            # lerobot's means are of float32 pixels; the PNG is lossless, so only float rounding differs
            np.testing.assert_allclose(channel_means(image), stats["mean_per_channel"], atol=1e-6)
            np.testing.assert_allclose(channel_means(image), stats["source_mean_per_channel"], atol=1e-6)


def test_v30_video_frames_match_lerobot(expected, v30_video_root):
    want = expected("v30_video")
    ds = LeRobotDataset(str(v30_video_root))
    for backend in ("pyav", "torchcodec"):
        for index, cameras in want["decoded_images"][backend].items():
            sample = ds[int(index)]
            for camera, stats in cameras.items():
                image = sample["images"][camera]
                assert list(image.shape) == [stats["shape"][1], stats["shape"][2], 3]
                np.testing.assert_allclose(channel_means(image), stats["mean_per_channel"], atol=VIDEO_MEAN_TOL)
                assert image.min() / 255 == stats["min"] and image.max() / 255 == stats["max"]


def test_v30_video_positions_are_frame_accurate(expected, v30_video_root):
    """Each decoded frame is the one at its timestamp, not a neighbour: among the frames of
    the whole file, the one closest in channel means to lerobot's is the requested one."""
    want = expected("v30_video")["decoded_images"]["pyav"]
    ds = LeRobotDataset(str(v30_video_root))
    camera = "observation.images.top"
    all_means = np.stack([channel_means(ds[i]["images"][camera]) for i in range(len(ds))])
    for index, cameras in want.items():
        distance = np.abs(all_means - np.asarray(cameras[camera]["mean_per_channel"])).sum(1)
        assert int(distance.argmin()) == int(index)
        assert np.sort(distance)[1] > 5 * 3 * VIDEO_MEAN_TOL  # neighbours are far outside the tolerance


def test_first_frame_of_episode_in_shared_video(expected, v30_video_root):
    """Episode 1 starts at videos/<key>/from_timestamp = 1.2 s inside the shared mp4."""
    want = expected("v30_video")["delta_timestamps"]["history_at_episode_start"]
    ds = LeRobotDataset(str(v30_video_root))
    sample = ds[want["index"]]
    assert sample["episode_index"] == 1 and sample["frame_index"] == 0
    means = channel_means(sample["images"]["observation.images.top"])
    np.testing.assert_allclose(means, want["observation.images.top_mean_per_frame_per_channel"][-1], atol=1e-3)


@pytest.mark.parametrize("name", ["v30_video", "v21_image"])
def test_action_chunk_padding_matches_lerobot(name, expected, v30_video_root, v21_image_root):
    """The fixture README's example: 4 steps at the second-to-last frame of episode 0 ->
    pad [F, F, T, T], the padded rows repeat the episode's last action."""
    root = v30_video_root if name == "v30_video" else v21_image_root
    want = expected(name)["delta_timestamps"]["action_chunk"]
    for ds in (
        LeRobotDataset(str(root), chunk_size=4),
        LeRobotDataset(str(root), delta_timestamps=want["delta_timestamps"]),
    ):
        sample = ds[want["index"]]
        assert sample["action_is_pad"].tolist() == want["action_is_pad"] == [False, False, True, True]
        np.testing.assert_array_equal(sample["actions"], np.float32(want["action"]))
        np.testing.assert_array_equal(sample["state"], np.float32(want["observation.state"]))
        np.testing.assert_array_equal(sample["actions"][2], sample["actions"][1])


def test_chunks_never_cross_episodes(v30_video_root):
    ds = LeRobotDataset(str(v30_video_root), chunk_size=5)
    for i in range(len(ds)):
        sample = ds[i]
        _, end = ds.episode_range(sample["episode_index"])
        valid = (i + np.arange(5)) < end
        assert sample["action_is_pad"].tolist() == (~valid).tolist()
        # action[0] encodes -(100 * episode + frame): every row is from this episode
        episode_of_rows = np.floor(-sample["actions"][:, 0] / 100).astype(int)
        assert (episode_of_rows == sample["episode_index"]).all()


def test_stats_are_lerobots(expected, v30_video_root, v21_image_root):
    want = expected("v30_video")["stats_json"]
    ds = LeRobotDataset(str(v30_video_root))
    for key in ("observation.state", "action"):
        for stat, value in want[key].items():
            np.testing.assert_allclose(ds.stats[key][stat], value, rtol=1e-12)
    # v2.1 has only per-episode stats: pooled like lerobot does in memory
    summary = expected("v21_image")["stats_summary"]
    ds = LeRobotDataset(str(v21_image_root))
    for key in ("observation.state", "action"):
        for stat in ("mean", "std", "min", "max", "count"):
            np.testing.assert_allclose(ds.stats[key][stat], summary[key][stat], rtol=1e-12)


def test_stats_of_an_episode_subset_are_computed_from_its_data(v30_video_root):
    ds = LeRobotDataset(str(v30_video_root), episodes=[0, 2])
    assert len(ds) == 12 + 13 and [e.index for e in ds.episodes] == [0, 2]
    state = np.stack([ds[i]["state"] for i in range(len(ds))]).astype(np.float64)
    np.testing.assert_allclose(ds.stats["observation.state"]["mean"], state.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ds.stats["observation.state"]["q99"], np.quantile(state, 0.99, axis=0), rtol=1e-12)
    assert ds.fingerprint != LeRobotDataset(str(v30_video_root)).fingerprint


def test_fingerprint_is_stable_and_tracks_content(v30_video_root, tmp_path):
    a, b = LeRobotDataset(str(v30_video_root)), LeRobotDataset(str(v30_video_root))
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    copy = tmp_path / "copy"
    shutil.copytree(v30_video_root, copy)
    assert LeRobotDataset(str(copy)).fingerprint == a.fingerprint  # content, not location
    info = json.loads((copy / "meta/info.json").read_text())
    info["robot_type"] = "another_arm"
    (copy / "meta/info.json").write_text(json.dumps(info))
    assert LeRobotDataset(str(copy)).fingerprint != a.fingerprint


def test_embodiment_selects_and_orders_keys(v30_video_root):
    ds = LeRobotDataset(
        str(v30_video_root),
        embodiment={
            "name": "arm",
            "embodiment_id": 3,
            "cameras": ["observation.images.wrist"],
            "state": ["observation.state"],
            "action": [{"key": "action", "dim": 7, "norm": "min_max"}],
        },
    )
    sample = ds[0]
    assert list(sample["images"]) == ["observation.images.wrist"] and sample["embodiment_id"] == 3
    assert ds.state_dim == 8 and ds.action_dim == 7


def test_dataloader_workers_decode_video(v30_video_root):
    """The dataset pickles into worker processes (open video containers are not carried)."""
    import torch

    ds = LeRobotDataset(str(v30_video_root), chunk_size=2)
    ds[0]  # opens a container in this process
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2, collate_fn=lambda x: x)
    seen = [s for batch in loader for s in batch]
    assert [s["index"] for s in seen] == list(range(len(ds)))
    for i in (0, 17, 35):
        camera = "observation.images.top"
        np.testing.assert_array_equal(seen[i]["images"][camera], ds[i]["images"][camera])


# ---- bad input ------------------------------------------------------------------------------
def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LeRobotDataset(str(tmp_path / "nope"))


def test_not_a_lerobot_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match=r"is not a LeRobot dataset: it has no meta/info\.json"):
        LeRobotDataset(str(tmp_path))


def test_unsupported_version_and_unfinalized_dataset(tmp_path, v30_video_root):
    copy = tmp_path / "ds"
    shutil.copytree(v30_video_root, copy)
    info = json.loads((copy / "meta/info.json").read_text())
    (copy / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(DataError, match=r"v1\.6"):
        LeRobotDataset(str(copy))
    (copy / "meta/info.json").write_text(json.dumps(info))
    shutil.rmtree(copy / "meta/episodes")
    with pytest.raises(DataError, match="not finalized"):
        LeRobotDataset(str(copy))


def test_configured_key_absent_names_it_and_lists_the_keys(v30_video_root):
    with pytest.raises(DataError) as info:
        LeRobotDataset(str(v30_video_root), embodiment={"state": ["observation.joint_positions"]})
    message = str(info.value)
    assert "'observation.joint_positions' is not in" in message
    assert "observation.state" in message and "action" in message  # the dataset's keys are listed
    with pytest.raises(DataError, match=r"camera key 'observation\.images\.left' is not in"):
        LeRobotDataset(str(v30_video_root), embodiment={"cameras": ["observation.images.left"]})


def test_state_or_action_larger_than_max_dim(v30_video_root):
    with pytest.raises(DataError, match=r"the action \(action\) has 7 dims, more than .*max_action_dim=6"):
        LeRobotDataset(str(v30_video_root), embodiment={"max_action_dim": 6})


def test_bad_delta_timestamps(v30_video_root):
    with pytest.raises(DataError, match="not multiples of 1/fps"):
        LeRobotDataset(str(v30_video_root), delta_timestamps={"action": [0.0, 0.05]})
    with pytest.raises(DataError, match="same non-empty offsets to every action key"):
        LeRobotDataset(str(v30_video_root), delta_timestamps={"action": []})


def test_missing_data_or_video_file(tmp_path, v30_video_root):
    copy = tmp_path / "ds"
    shutil.copytree(v30_video_root, copy)
    (copy / "videos/observation.images.top/chunk-000/file-000.mp4").unlink()
    with pytest.raises(DataError, match=r"episode 0, frame 0 .*: video file .* is missing"):  # checked when opened
        LeRobotDataset(str(copy))
    (copy / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(DataError, match=r"data file .* is missing"):
        LeRobotDataset(str(copy))


def test_index_out_of_range(v21_image_root):
    ds = LeRobotDataset(str(v21_image_root))
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_v21_video_layout(tmp_path, v21_image_root):
    """v2.1 keeps one mp4 per episode and camera (videos/chunk-000/<key>/episode_NNNNNN.mp4,
    timestamps from 0): re-encode the v2.1 PNG fixture that way and read it back."""
    import pyarrow.parquet as pq

    from vla_core.data.video import VideoEncoder

    source = LeRobotDataset(str(v21_image_root))
    root = tmp_path / "v21_video"
    shutil.copytree(v21_image_root, root)
    info = json.loads((root / "meta/info.json").read_text())
    info["video_path"] = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    cameras = source.camera_keys
    for camera in cameras:
        info["features"][camera]["dtype"] = "video"
    (root / "meta/info.json").write_text(json.dumps(info))
    for episode in source.episodes:
        start, end = source.episode_range(episode.index)
        for camera in cameras:
            height, width, _ = info["features"][camera]["shape"]
            path = root / f"videos/chunk-000/{camera}/episode_{episode.index:06d}.mp4"
            encoder = VideoEncoder(path, 10, width, height, codec="h264", crf=10)
            for i in range(start, end):
                encoder.add(source[i]["images"][camera])
            encoder.close()
        data_file = root / episode.data_file.relative_to(v21_image_root)  # the copy, never the fixture
        pq.write_table(pq.read_table(data_file).drop_columns(cameras), data_file)
    ds = LeRobotDataset(str(root), chunk_size=3)
    originals = {c: np.stack([source[i]["images"][c] for i in range(len(source))]).astype(float) for c in cameras}
    for i in range(len(ds)):
        got = ds[i]
        np.testing.assert_array_equal(got["actions"][0], source[i]["actions"][0])
        for camera in cameras:
            errors = np.abs(originals[camera] - got["images"][camera]).mean(axis=(1, 2, 3)) / 255
            assert errors[i] < 0.02 and int(errors.argmin()) == i, (i, camera)  # lossy, but the right frame
