"""Observation history through `delta_timestamps`: equal to lerobot's answer on the shared
fixtures, clamped and flagged at episode boundaries, and the batch schema's T_obs axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_core.data.delta_timestamps import observation_history_length
from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.processor import VLAProcessor
from vla_core.data.schema import check_batch, collate
from vla_core.errors import DataError

CAMERAS = ["observation.images.top"]
VIDEO_MEAN_TOL = 2e-4  # as test_lerobot_dataset: a one-frame shift moves the means by > 5e-3


def channel_means(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) / 255.0).reshape(-1, 3).mean(0)


def history_dataset(root, offsets, cameras=CAMERAS, **kwargs) -> LeRobotDataset:
    delta = {key: list(offsets) for key in [*cameras, "observation.state"]}
    return LeRobotDataset(str(root), embodiment={"cameras": cameras}, delta_timestamps=delta, **kwargs)


@pytest.mark.parametrize("name", ["v30_video", "v21_image"])
def test_history_at_episode_start_equals_lerobots(name, expected, v30_video_root, v21_image_root):
    """lerobot's own answer (`history_at_episode_start`): values, pad flags and clamping."""
    root = v30_video_root if name == "v30_video" else v21_image_root
    want = expected(name)["delta_timestamps"]["history_at_episode_start"]
    assert set(want["delta_timestamps"]) == {*CAMERAS, "observation.state"}
    ds = LeRobotDataset(str(root), embodiment={"cameras": CAMERAS}, delta_timestamps=want["delta_timestamps"])
    assert ds.n_obs_steps == 3
    sample = ds[want["index"]]
    assert (sample["episode_index"], sample["frame_index"]) == (want["episode_index"], want["frame_index"])
    np.testing.assert_array_equal(sample["state"], np.float32(want["observation.state"]))
    for key in want["pad_keys"]:  # lerobot flags each key; they share one axis here
        assert sample["observation_is_pad"].tolist() == want[key] == [True, True, False]
    frames = sample["images"]["observation.images.top"]
    t_obs, channels, height, width = want["observation.images.top_shape"]
    assert frames.shape == (t_obs, height, width, channels) and frames.dtype == np.uint8
    for frame, means in zip(frames, want["observation.images.top_mean_per_frame_per_channel"], strict=True):
        np.testing.assert_allclose(channel_means(frame), means, atol=VIDEO_MEAN_TOL)


@pytest.mark.parametrize("name", ["v30_video", "v21_image"])
def test_history_inside_and_across_episodes_follows_lerobots_rule(name, v30_video_root, v21_image_root):
    """Every frame: rows i-2, i-1, i clamped into the episode (lerobot's _get_query_indices),
    padded where they fall before its start; the content formula names the row exactly
    (state[0] = 100*episode + frame), and images are the clamped rows' frames."""
    root = v30_video_root if name == "v30_video" else v21_image_root
    ds = history_dataset(root, [-0.2, -0.1, 0.0])
    plain = LeRobotDataset(str(root), embodiment={"cameras": CAMERAS})
    for i in range(len(ds)):
        sample = ds[i]
        start, _ = ds.episode_range(sample["episode_index"])
        wanted = np.array([i - 2, i - 1, i])
        assert sample["observation_is_pad"].tolist() == (wanted < start).tolist()
        rows = np.maximum(wanted, start)
        frames = [plain.column("frame_index")[r] for r in rows]
        np.testing.assert_array_equal(sample["state"][:, 0], 100 * sample["episode_index"] + np.float32(frames))
        assert sample["actions"].shape == (1, 7)  # the action chunk is unaffected
        if i % 5 == 0:  # images: the same frames as the single-frame reader gives for those rows
            for t, r in enumerate(rows):
                np.testing.assert_array_equal(sample["images"][CAMERAS[0]][t], plain[int(r)]["images"][CAMERAS[0]])


def test_history_with_stride_and_action_chunk(v21_image_root):
    ds = history_dataset(v21_image_root, [-0.4, -0.2, 0.0], chunk_size=3)
    sample = ds[13]  # episode 1 starts at row 10: rows 9 and 11 -> 10 (pad) and 11
    assert sample["observation_is_pad"].tolist() == [True, False, False]
    np.testing.assert_array_equal(sample["state"][:, 0], [100.0, 101.0, 103.0])
    assert sample["actions"].shape == (3, 7) and ds.chunk_size == 3


def test_bad_history_configs_are_clear_errors(v30_video_root):
    root = str(v30_video_root)
    with pytest.raises(DataError, match=r"same non-empty offsets to every observation key.*nothing for"):
        LeRobotDataset(root, delta_timestamps={"observation.state": [-0.1, 0.0]})
    with pytest.raises(DataError, match=r"strictly increasing and end at 0\.0"):
        history_dataset(v30_video_root, [-0.1, 0.0, 0.1])
    with pytest.raises(DataError, match="not multiples of 1/fps"):
        history_dataset(v30_video_root, [-0.15, 0.0])
    with pytest.raises(DataError, match="neither action keys"):
        LeRobotDataset(root, delta_timestamps={"observation.velocity": [0.0]})


def test_config_level_history_length():
    assert observation_history_length({"chunk_size": 4}) == 0
    assert observation_history_length({"delta_timestamps": {"action": [0.0, 0.1]}}) == 0
    spec = {"delta_timestamps": {"act": [0.0], "observation.state": [-0.1, 0.0]}, "embodiment": {"action": ["act"]}}
    assert observation_history_length(spec) == 2


def test_processor_and_collate_give_the_history_axis(v21_image_root):
    ds = history_dataset(v21_image_root, [-0.2, -0.1, 0.0], chunk_size=2)
    processor = VLAProcessor(image_size=16, max_state_dim=10, max_action_dim=8, chunk_size=2).fit(ds)
    samples = [processor(ds[i]) for i in (10, 15)]
    batch = collate(samples)
    assert batch["images"].shape == (2, 3, 1, 3, 16, 16)
    assert batch["img_masks"].shape == (2, 3, 1) and batch["img_masks"].all()
    assert batch["states"].shape == (2, 3, 10)
    assert batch["obs_masks"].tolist() == [[False, False, True], [True, True, True]]
    check_batch(batch)
    # each frame is normalised exactly like the same frame without history
    plain = LeRobotDataset(str(v21_image_root), embodiment={"cameras": CAMERAS}, chunk_size=2)
    single = processor(plain[14])
    torch.testing.assert_close(batch["images"][1, 1], single["images"], rtol=0, atol=0)
    torch.testing.assert_close(batch["states"][1, 1], single["states"], rtol=0, atol=0)
    # a T_obs that differs between keys, or a sample without history in the batch, is named
    broken = dict(batch, states=batch["states"][:, :2])
    with pytest.raises(DataError, match="T_obs"):
        check_batch(broken)
    with pytest.raises(DataError, match="observation history"):
        collate([samples[0], single])


def test_without_history_the_schema_is_unchanged(v21_image_root):
    ds = LeRobotDataset(str(v21_image_root), embodiment={"cameras": CAMERAS}, chunk_size=2)
    assert ds.n_obs_steps is None and "observation_is_pad" not in ds[0]
    processor = VLAProcessor(image_size=16, max_state_dim=10, max_action_dim=8, chunk_size=2).fit(ds)
    batch = collate([processor(ds[i]) for i in range(2)])
    assert "obs_masks" not in batch and batch["images"].shape == (2, 1, 3, 16, 16)
    check_batch(batch)
    with pytest.raises(DataError, match=r"'images' has shape .*expected \(B, T_obs"):
        check_batch({**batch, "obs_masks": torch.ones(2, 1, dtype=torch.bool)})
