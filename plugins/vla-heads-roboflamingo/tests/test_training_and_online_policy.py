"""Each head inside a tiny LlavaVLA trained 2 steps through the engine on a LeRobot dataset
with observation history, then driven like `vla eval` drives it: one frame at a time
through `Policy`, equal to the prediction from the dataset's window of the same frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vla_core.config.run import validate_run_config
from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.engine import Policy, Trainer
from vla_core.testing import tiny_vla_spec

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "lerobot" / "v21_image"
CAMERA = "observation.images.top"
OFFSETS = [-0.2, -0.1, 0.0]  # 3 frames at 10 fps
EMBODIMENT = {"cameras": [CAMERA], "action": [{"key": "action", "norm": "min_max"}]}


def run_config(head_kwargs, name: str, output_dir: Path) -> dict:
    head = {"type": name, **head_kwargs(name, in_features=48, out_features=6)}
    model = tiny_vla_spec(head=head)
    model["processor"] = {"type": "VLAProcessor", "image_size": 32, "max_lang_len": 8, "max_state_dim": 8,
                          "max_action_dim": 7, "chunk_size": 2}
    data = {"type": "LeRobotDataset", "root": str(FIXTURE), "chunk_size": 2, "embodiment": EMBODIMENT,
            "delta_timestamps": {CAMERA: OFFSETS, "observation.state": OFFSETS}}
    train = {"steps": 2, "batch_size": 4, "precision": "fp32", "save_every": 2, "log_every": 1, "lr": 1e-3}
    return {"model": model, "data": data, "train": train, "output_dir": str(output_dir)}


def observation(sample: dict) -> dict:
    return {k: v for k, v in sample.items() if k not in ("actions", "action_is_pad")}


@pytest.mark.parametrize("name", ["FCDecoder", "DeterministicDecoder", "GPTDecoder"])
def test_trains_two_steps_and_predicts_online_as_over_the_window(head_kwargs, name, tmp_path):
    config = validate_run_config(run_config(head_kwargs, name, tmp_path / "run"))
    result = Trainer(config).fit()
    assert result.step == 2 and np.isfinite(result.last_metrics["loss"])

    policy = Policy.from_pretrained(tmp_path / "run", precision="fp32")
    frames = LeRobotDataset(str(FIXTURE), embodiment=EMBODIMENT, chunk_size=2)
    windows = LeRobotDataset(str(FIXTURE), embodiment=EMBODIMENT, chunk_size=2,
                             delta_timestamps={CAMERA: OFFSETS, "observation.state": OFFSETS})
    start, _ = frames.episode_range(1)
    for episode in range(2):  # the second pass checks that reset() forgets the first
        policy.reset()
        for index in range(start, start + 5):  # window padded at first, then sliding
            online = policy.act(observation(frames[index]))
            batched = policy.act(observation(windows[index]))
            assert online.shape == (2, 7)
            message = f"pass {episode}, frame {index - start}"
            np.testing.assert_allclose(online, batched, rtol=1e-5, atol=1e-4, err_msg=message)
