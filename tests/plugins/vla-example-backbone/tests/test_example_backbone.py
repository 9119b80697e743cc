"""The example backbone plugin, tested as a user installs it: listed, meets the contract,
trains inside a VLA with vla's own trainer, and its checkpoint predicts the same in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import vla_core
from vla_core.errors import ConfigError
from vla_core.testing import assert_plugin_is_light, check_vlm_backbone, make_tiny_batch

CAMERA = "observation.images.top"
TASKS = ("pick the red block", "open the drawer")
BACKBONE = {"type": "FiLMConvBackbone", "vocab_size": 32, "hidden_size": 32, "channels": 8, "text_dim": 16,
            "image_size": [16, 16]}


def test_listed_with_its_package():
    rows = {r.name: r for r in vla_core.list_components(kind="vlm_backbones")}
    assert rows["FiLMConvBackbone"].package == "vla-example-backbone"


def test_plugin_stays_light():
    assert_plugin_is_light("vla-example-backbone")


def test_backbone_contract():
    backbone = vla_core.build_component("vlm_backbones", {**BACKBONE, "image_size": [32, 32], "vocab_size": 64})
    check_vlm_backbone(backbone, image_size=(32, 32), vocab_ids=[3, 8, 1, 9])


def test_the_instruction_modulates_the_image_features():
    backbone = vla_core.build_component("vlm_backbones", {**BACKBONE, "image_size": [32, 32], "vocab_size": 64})
    for film in backbone.film:  # zero-initialised (a plain conv net at first); trained values are not
        torch.nn.init.normal_(film.weight)
    batch = make_tiny_batch()
    args = (batch["images"], batch["img_masks"], batch["lang_masks"])
    one = backbone(args[0], batch["lang_tokens"], *args[1:]).features[:, :64]  # the 8 x 8 image cells
    other = backbone(args[0], (batch["lang_tokens"] + 1) % 64, *args[1:]).features[:, :64]
    assert not torch.allclose(one, other)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """A LeRobot v3.0 dataset of 2 episodes x 6 frames, 16 px images, 3 state and 2 action dims."""
    from vla_core.data.lerobot_writer import LeRobotWriter

    root = tmp_path_factory.mktemp("data") / "toy"
    features = {CAMERA: {"dtype": "image", "shape": [16, 16, 3]},
                "observation.state": {"dtype": "float32", "shape": [3]},
                "action": {"dtype": "float32", "shape": [2]}}
    rng = np.random.default_rng(0)
    writer = LeRobotWriter.create(root, fps=10, features=features, robot_type="toy_arm")
    for episode in range(2):
        for _ in range(6):
            writer.add_frame({CAMERA: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                              "observation.state": rng.normal(size=3).astype(np.float32),
                              "action": rng.normal(size=2).astype(np.float32)}, task=TASKS[episode])
        writer.save_episode()
    writer.finalize()
    return root


def run_config(output_dir, root, **processor):
    """LlavaVLA(FiLMConvBackbone -> MLPActionHead) with a VLAProcessor whose images follow the backbone."""
    settings = {"type": "VLAProcessor", "image_size": 16, "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225], "max_lang_len": 6, "max_state_dim": 3, "max_action_dim": 2,
                "chunk_size": 4, **processor}
    return {
        "model": {"type": "LlavaVLA", "vlm_backbone": BACKBONE,
                  "vla_head": {"type": "MLPActionHead", "input_dim": 32, "state_dim": 3, "action_dim": 2,
                               "chunk_size": 4, "hidden_dim": 32},
                  "processor": settings},
        "data": {"type": "LeRobotDataset", "root": str(root), "chunk_size": 4},
        "train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "save_every": 3, "log_every": 1, "seed": 0,
                  "precision": "fp32", "num_workers": 0},
        "output_dir": str(output_dir),
    }


def train(config):
    from vla_core.config.run import validate_run_config
    from vla_core.engine.trainer import Trainer
    from vla_core.plugin_manager import new_plugin_manager

    return Trainer(validate_run_config(config), plugin_manager=new_plugin_manager()).fit()


def test_trains_and_reloads_in_a_fresh_process(dataset_root, tmp_path):
    from vla_core.data.lerobot_dataset import LeRobotDataset
    from vla_core.engine.metrics import read_metrics
    from vla_core.engine.policy import Policy

    result = train(run_config(tmp_path / "run", dataset_root))
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in read_metrics(tmp_path / "run"))
    checkpoint = result.last_checkpoint
    saved = json.loads((checkpoint / "config.json").read_text())["model"]["vlm_backbone"]
    assert saved["type"] == "FiLMConvBackbone" and saved["image_size"] == [16, 16]

    observation = LeRobotDataset(str(dataset_root), chunk_size=4)[3]
    here = Policy.from_pretrained(checkpoint, precision="fp32").act(observation)
    script = (
        "import sys, json, numpy as np\n"
        "from vla_core.data.lerobot_dataset import LeRobotDataset\n"
        "from vla_core.engine.policy import Policy\n"
        "obs = LeRobotDataset(sys.argv[2], chunk_size=4)[3]\n"
        "print(json.dumps(Policy.from_pretrained(sys.argv[1], precision='fp32').act(obs).tolist()))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", script, str(checkpoint), str(dataset_root)],
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    there = np.asarray(json.loads(fresh.stdout.strip().splitlines()[-1]), dtype=np.float32)
    assert here.shape == (4, 2)
    np.testing.assert_allclose(there, here, rtol=1e-5, atol=1e-6)


def test_a_processor_with_other_image_statistics_is_refused(dataset_root, tmp_path):
    # The backbone declares ImageNet mean/std (processor_settings()); 0.5/0.5 would train silently wrong.
    with pytest.raises(ConfigError, match="image_mean"):
        train(run_config(tmp_path / "run", dataset_root, image_mean=[0.5, 0.5, 0.5]))


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused(dataset_root, tmp_path):
    config = run_config(tmp_path / "run", dataset_root)
    config["model"]["vlm_backbone"] = {**BACKBONE, "vocab_size": 3}  # the word tokenizer has more ids
    with pytest.raises(ConfigError, match="vocabulary"):
        train(config)
