"""Input checks before the model: every bad observation is a clear error naming the key."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from serving_fixtures import TOP, WRIST, noise, observation, openpi_observation

from vla_core.errors import ConfigError
from vla_core.serving.checks import ObservationError, ObservationSpec
from vla_core.serving.keys import load_checkpoint_key_map, parse_key_options


@pytest.fixture
def spec(policy) -> ObservationSpec:
    return ObservationSpec.from_policy(policy)


def test_the_spec_is_read_from_the_checkpoint(spec):
    assert spec.cameras == [TOP, WRIST] and spec.image_size == (32, 32) and spec.state_dim == 8
    assert spec.noise_shape == (4, 7) and spec.embodiment_ids == range(0, 1)
    assert spec.keys["observation/image"] == TOP and spec.keys["observation/wrist_image"] == WRIST


def test_openpi_keys_and_chw_frames_give_the_same_model_input_as_the_nested_observation(spec, policy):
    message = openpi_observation(1)
    message["observation/image"] = np.ascontiguousarray(message["observation/image"].transpose(2, 0, 1))
    checked, no_noise = spec.check({**message, "embodiment_id": np.int64(0)})
    assert no_noise is None and checked["task"] == "open the drawer" and checked["embodiment_id"] == 0
    np.testing.assert_array_equal(policy.act(checked), policy.act(observation(1)))


def bad(change):
    message = {**openpi_observation(), "noise": noise()}
    change(message)
    return message


BAD = {
    "NaN state": (
        lambda m: m["observation/state"].__setitem__(2, np.nan),
        r"the state \('observation/state'\) holds NaN or inf at index \[2\]",
    ),
    "inf state": (lambda m: m["observation/state"].__setitem__(0, np.inf), "holds NaN or inf at index"),
    "batched state": (
        lambda m: m.update({"observation/state": np.zeros((1, 8), np.float32)}),
        r"must be a 1-D vector, got shape \(1, 8\)",
    ),
    "scalar state": (lambda m: m.update({"observation/state": np.float32(1)}), "must be a numeric array, got float32"),
    "short state": (lambda m: m.update({"observation/state": np.zeros(5)}), "has 5 values; the model takes 8"),
    "string state": (lambda m: m.update({"observation/state": "1 2 3"}), "must be a numeric array, got str"),
    "missing image": (
        lambda m: m.pop("observation/wrist_image"),
        r"missing 'observation.images.wrist' \(send one of keys "
        r"\['observation.images.wrist', 'observation/wrist_image'\]\)",
    ),
    "unknown key": (
        lambda m: m.update({"observation/joint_position": np.zeros(7)}),
        r"unknown key\(s\) \['observation/joint_position'\]; this server accepts",
    ),
    "given twice": (lambda m: m.update({"task": "x"}), r"'task' is given twice, by keys \['task', 'prompt'\]"),
    "zero-size image": (lambda m: m.update({"observation/image": np.zeros((0, 64, 3), np.uint8)}), r"got \(0, 64, 3\)"),
    "grey image": (
        lambda m: m.update({"observation/image": np.zeros((64, 64), np.uint8)}),
        r"\(H, W, 3\) or \(3, H, W\), got \(64, 64\)",
    ),
    "float 0..255 image": (
        lambda m: m.update({"observation/image": np.full((64, 64, 3), 200.0, np.float32)}),
        r"float image with values in \[200, 200\]; float images must be in \[0, 1\]",
    ),
    "NaN image": (
        lambda m: m.update({"observation/image": np.full((64, 64, 3), np.nan, np.float32)}),
        "NaN or inf pixels",
    ),
    "int16 image": (
        lambda m: m.update({"observation/image": np.zeros((64, 64, 3), np.int16)}),
        "must be uint8 .* got dtype int16",
    ),
    "bytes task": (lambda m: m.update({"prompt": b"\xff\xfe"}), "bytes that are not UTF-8 text"),
    "number task": (lambda m: m.update({"prompt": 3}), "must be the instruction string, got int"),
    "embodiment array": (
        lambda m: m.update({"embodiment_id": np.array([0, 1])}),
        "'embodiment_id' must be one integer",
    ),
    "embodiment range": (
        lambda m: m.update({"embodiment_id": 5}),
        "'embodiment_id' is 5; this model has embodiment ids 0..0",
    ),
    "noise shape": (
        lambda m: m.update({"noise": np.zeros((4, 3), np.float32)}),
        r"must be float \(T, A\) = \(4, 7\), got float32 \(4, 3\)",
    ),
    "NaN noise": (lambda m: m["noise"].__setitem__((0, 0), np.nan), "'noise' holds NaN or inf"),
    "not a map": (lambda m: None, "must be a map"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_observations_are_refused_with_the_key_expected_and_received(spec, case):
    change, pattern = BAD[case]
    message = [1, 2] if case == "not a map" else bad(change)
    with pytest.raises(ObservationError, match=pattern):
        spec.check(message)


def test_a_frame_far_from_the_model_size_warns_once_or_is_refused(policy, caplog):
    message = {**openpi_observation(), "observation/image": np.zeros((480, 640, 3), np.uint8)}
    warn = ObservationSpec.from_policy(policy)
    with caplog.at_level(logging.WARNING, logger="vla_core.serving.checks"):
        warn.check(message)
        warn.check(message)
    assert [r.getMessage() for r in caplog.records] == [
        "'observation/image' is 480x640 but the model takes 32x32 frames; it would be resized by 15x20. Resize on "
        "the robot, or check that this is the right camera. (warned once per key)"
    ]
    with pytest.raises(ObservationError, match="is 480x640 but the model takes 32x32"):
        ObservationSpec.from_policy(policy, frame_size="refuse").check(message)
    ObservationSpec.from_policy(policy, frame_size="refuse").check(openpi_observation())  # 64 and 48 are near 32


def test_droid_style_keys_map_to_cameras_and_concatenate_into_the_state(policy, tmp_path):
    (tmp_path / "serving.json").write_text(json.dumps({"keys": {
        "observation/exterior_image_1_left": TOP, "observation/joint_position": "state",
    }}))
    keys = (load_checkpoint_key_map(tmp_path), parse_key_options(["observation/gripper_position=state"]))
    spec = ObservationSpec.from_policy(policy, keys)
    obs = observation(2)
    checked, _ = spec.check({
        "observation/exterior_image_1_left": obs["images"][TOP], "observation/wrist_image": obs["images"][WRIST],
        "observation/joint_position": obs["state"][:7], "observation/gripper_position": obs["state"][7:],
        "prompt": obs["task"],
    })
    np.testing.assert_array_equal(checked["state"], obs["state"])  # in the key map's order
    with pytest.raises(ConfigError, match=r"sends 'x' to 'observation\.images\.side', which is not an input"):
        ObservationSpec.from_policy(policy, ({"x": "observation.images.side"},))
    with pytest.raises(ConfigError, match="is not WIRE_KEY=TARGET"):
        parse_key_options(["observation/image"])


def test_reset_calls_the_heads_reset(policy, monkeypatch):
    calls = []
    monkeypatch.setattr(policy.vla.vla_head, "reset", lambda: calls.append("head"), raising=False)
    policy.reset()
    assert calls == ["head"]
    assert torch.is_tensor(torch.zeros(1))
