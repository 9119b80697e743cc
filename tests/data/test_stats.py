"""Streaming statistics equal numpy's; the dataset_statistics.json artifact and its checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.stats import QUANTILES, DatasetStatistics, compute_stats
from vla_core.errors import DataError


def numpy_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    out = {"mean": values.mean(0), "std": values.std(0), "min": values.min(0), "max": values.max(0)}
    out.update({name: np.quantile(values, q, axis=0) for name, q in QUANTILES.items()})
    return out


@pytest.mark.parametrize("block_rows", [1, 7, 1000, 5000])
def test_streaming_stats_equal_numpys(block_rows):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(3, 2, size=(3000, 4)), rng.exponential(5, size=(2000, 4))]) * [1, 10, -1, 1e3]
    values = values.astype(np.float32)
    blocks = [values[i : i + block_rows] for i in range(0, len(values), block_rows)]
    got = compute_stats(blocks)
    want = numpy_stats(values.astype(np.float64))
    assert got["count"].tolist() == [len(values)]
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-10, atol=1e-9, err_msg=name)


def test_histogram_quantiles_are_within_their_bound():
    """Past max_exact_values the quantiles come from a histogram: within (max - min) / bins."""
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(size=(20000, 3)), rng.uniform(-40, 40, size=(200, 3))])
    bins = 4096
    got = compute_stats(lambda: iter(np.array_split(values, 13)), max_exact_values=100, histogram_bins=bins)
    want = numpy_stats(values)
    bound = (values.max(0) - values.min(0)) / bins
    for name in QUANTILES:
        assert (np.abs(got[name] - want[name]) <= bound + 1e-12).all(), name
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-10)  # moments stay exact


def test_dataset_stats_equal_numpys_over_the_same_data(written_dataset):
    root, source = written_dataset
    ds = LeRobotDataset(str(root))
    computed = DatasetStatistics.from_dataset(ds, stats_source="compute")
    assert computed.source == "computed"
    for feature in computed.features:
        values = np.stack([source[k][feature.key] for k in sorted(source)]).astype(np.float64)
        for name, value in numpy_stats(values).items():
            np.testing.assert_allclose(feature.stats[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    # the metadata the writer stored holds the same numbers
    from_meta = DatasetStatistics.from_dataset(ds, stats_source="dataset")
    assert from_meta.source == "dataset"
    for a, b in zip(computed.features, from_meta.features, strict=True):
        for name in ("mean", "std", "min", "max", "q01", "q99"):
            np.testing.assert_allclose(a.stats[name], b.stats[name], rtol=1e-12)


def test_modes_and_missing_quantiles(v21_image_root):
    ds = LeRobotDataset(str(v21_image_root), embodiment={"action": [{"key": "action", "norm": "q01_q99"}]})
    # v2.1 metadata has no quantiles: "auto" computes them, "dataset" refuses
    stats = DatasetStatistics.from_dataset(ds)
    assert stats.source == "computed+dataset"
    action = stats.role("action")[0]
    assert action.mode == "q01_q99"
    values = np.stack([ds[i]["actions"][0] for i in range(len(ds))]).astype(np.float64)
    np.testing.assert_allclose(action.stats["q01"], np.quantile(values, 0.01, axis=0), rtol=1e-12)
    with pytest.raises(DataError, match=r"no \['q01', 'q99'\] stats for 'action'"):
        DatasetStatistics.from_dataset(ds, stats_source="dataset")
    overridden = DatasetStatistics.from_dataset(ds, modes={"state": "identity", "action": "min_max"})
    assert [f.mode for f in overridden.features] == ["identity", "min_max"]


def test_affine_normalisation_of_each_mode():
    stats = {
        "mean": np.array([1.0, 2.0]),
        "std": np.array([2.0, 0.0]),
        "min": np.array([-1.0, 5.0]),
        "max": np.array([3.0, 5.0]),
        "q01": np.array([0.0, 5.0]),
        "q99": np.array([2.0, 5.0]),
    }
    x = np.array([3.0, 5.0])
    from vla_core.data.stats import FeatureStatistics

    def normalise(mode: str) -> np.ndarray:
        offset, scale = FeatureStatistics("f", "state", 2, mode, stats).affine()
        return (x - offset) / scale

    np.testing.assert_allclose(normalise("mean_std")[0], (3 - 1) / (2 + 1e-8))
    np.testing.assert_allclose(normalise("min_max")[0], 2 * (3 + 1) / 4 - 1)  # lerobot's formula
    np.testing.assert_allclose(normalise("q01_q99")[0], 2 * (3 - 0) / 2 - 1)
    np.testing.assert_array_equal(normalise("identity"), x)


def test_a_constant_feature_normalises_to_zero_and_back():
    """GR00T's Normalizer (gr00t/data/transform/state_action.py), min_max: mask = min != max;
    normalised[mask] = 2 (x - min) / (max - min) - 1; normalised[~mask] = 0; inverse
    (y + 1) / 2 * (max - min) + min. Ours gives the same, and the same for q01 == q99."""
    from vla_core.data.stats import FeatureStatistics

    low, high = np.array([-1.0, 5.0, 0.0]), np.array([3.0, 5.0, 0.0])  # dims 1 and 2 constant
    x = np.array([[3.0, 5.0, 0.0], [-1.0, 5.0, 0.0], [1.0, 5.0, 0.0]])
    mask = low != high
    want = np.zeros_like(x)  # gr00t: normalized = torch.zeros_like(x)
    want[:, mask] = 2 * (x[:, mask] - low[mask]) / (high[mask] - low[mask]) - 1  # gr00t: the mask dims
    for mode, stats in (("min_max", {"min": low, "max": high}), ("q01_q99", {"q01": low, "q99": high})):
        offset, scale = FeatureStatistics("f", "action", 3, mode, stats).affine()
        got = (x - offset) / scale
        np.testing.assert_array_equal(got[:, ~mask], 0.0)
        np.testing.assert_allclose(got, want, atol=1e-12)
        # un-normalising any model output gives the constant back (gr00t: (y + 1) / 2 * 0 + min)
        model_out = np.array([[0.0, 0.7, -1.0], [0.3, -0.2, 1.0]])
        np.testing.assert_allclose((model_out * scale + offset)[:, ~mask], np.broadcast_to(low[~mask], (2, 2)),
                                   atol=1e-8)
        np.testing.assert_allclose(got * scale + offset, x, atol=1e-12)  # and a round trip is exact


def test_artifact_round_trip_and_schema(tmp_path, v30_video_root):
    ds = LeRobotDataset(str(v30_video_root))
    stats = DatasetStatistics.from_dataset(ds)
    path = stats.save(tmp_path)
    raw = json.loads(path.read_text())
    assert path.name == "dataset_statistics.json" and raw["schema_version"] == 1
    assert raw["dataset_fingerprint"] == ds.fingerprint
    assert raw["features"]["observation.state"]["role"] == "state" and raw["features"]["action"]["dim"] == 7
    assert raw["features"]["action"]["names"] == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    loaded = DatasetStatistics.load(tmp_path)
    assert loaded.layout() == stats.layout() == {"state": [("observation.state", 8)], "action": [("action", 7)]}
    for a, b in zip(loaded.features, stats.features, strict=True):
        for name in a.stats:
            np.testing.assert_array_equal(a.stats[name], b.stats[name])

    raw["schema_version"] = 99
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="schema_version 99"):
        DatasetStatistics.load(path)
    raw["schema_version"] = 1
    raw["features"]["action"]["mean"] = raw["features"]["action"]["mean"][:5]
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"'action' \(action, dim 7, mode mean_std\) needs 'mean' of length 7"):
        DatasetStatistics.load(path)


def test_validate_against_names_every_mismatch(v30_video_root):
    stats = DatasetStatistics.from_dataset(LeRobotDataset(str(v30_video_root)))
    stats.validate_against({"state": [("observation.state", 8)], "action": [("action", 7)]}, max_state_dim=8)
    with pytest.raises(DataError) as info:
        stats.validate_against(
            {"state": [("observation.state", 9)], "action": [("action.ee", 7)]}, max_action_dim=6, what="the model"
        )
    message = str(info.value)
    assert "state features are [observation.state (8)] here but [observation.state (9)] in the model" in message
    assert "action features are [action (7)] here but [action.ee (7)] in the model" in message
    assert "the action has 7 dims, more than the model's max_action_dim=6" in message
