"""`OpenVLAProcessor` as a training processor: fitted on a LeRobot dataset (OpenVLA-format statistics),
normalising training samples as OpenVLA's RLDS pipeline (`normalize_action_and_proprio`), saved with the
checkpoint and picked again by `Policy.from_pretrained`."""

from __future__ import annotations

import json

import numpy as np
import pytest

CAMERA = "observation.images.front"
TASKS = ["pick up the red block", "put the bowl on the plate"]


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """A LeRobot v3.0 dataset of 2 episodes x 5 frames, 32 x 40 images, 5 state and 3 action dims."""
    from vla_core.data.lerobot_writer import LeRobotWriter

    root = tmp_path_factory.mktemp("data") / "toy"
    features = {CAMERA: {"dtype": "image", "shape": [32, 40, 3]},
                "observation.state": {"dtype": "float32", "shape": [5]},
                "action": {"dtype": "float32", "shape": [3]}}
    rng = np.random.default_rng(0)
    writer = LeRobotWriter.create(root, fps=10, features=features, robot_type="toy_arm")
    for episode in range(2):
        for _ in range(5):
            writer.add_frame({CAMERA: rng.integers(0, 256, (32, 40, 3), dtype=np.uint8),
                              "observation.state": rng.normal(size=5).astype(np.float32),
                              "action": rng.normal(size=3).astype(np.float32)}, task=TASKS[episode])
        writer.save_episode()
    writer.finalize()
    return root


def test_fit_train_save_and_act(ref, dataset_root, tmp_path):
    # ~13 s on 2 cores once torch/transformers are imported: a real `vla train` run (2 steps, a
    # checkpoint with checksums) and a reload; kept as one test so the run is paid once.
    from vla_openvla.processor import OpenVLAProcessor

    from vla_core.config.run import validate_run_config
    from vla_core.data.lerobot_dataset import LeRobotDataset
    from vla_core.engine.policy import Policy
    from vla_core.engine.trainer import Trainer
    from vla_core.plugin_manager import new_plugin_manager

    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    ref.write_llama_tokenizer(tokenizer)
    image_processor = json.loads(json.dumps(ref.write_preprocessor_config(tmp_path)))
    processor = {"type": "OpenVLAProcessor", "variant": "oft", "tokenizer": str(tokenizer),
                 "image_processor": image_processor, "use_proprio": True, "chunk_size": 2}
    config = {
        "model": {**ref.oft_spec(), "processor": processor},
        "data": {"type": "LeRobotDataset", "root": str(dataset_root), "chunk_size": 2},
        "train": {"steps": 2, "batch_size": 2, "lr": 1e-3, "save_every": 2, "log_every": 1, "seed": 0,
                  "precision": "fp32", "num_workers": 0},
        "output_dir": str(tmp_path / "run"),
    }
    result = Trainer(validate_run_config(config), plugin_manager=new_plugin_manager()).fit()

    dataset = LeRobotDataset(str(dataset_root), chunk_size=2)
    fitted = OpenVLAProcessor.from_pretrained(result.last_checkpoint)
    name = dataset.embodiment.name
    assert fitted.unnorm_key == name and fitted.cameras == [CAMERA] and fitted.state_dim == 5
    # OpenVLA's statistics: numpy's linear quantiles over every frame (exact at this size), mask all true.
    actions = np.stack([np.asarray(dataset[i]["actions"])[0] for i in range(len(dataset))])
    stats = fitted.norm_stats[name]["action"]
    np.testing.assert_allclose(stats["q01"], np.quantile(actions, 0.01, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    assert stats["mask"] == [True] * 3
    # normalize_action_and_proprio (BOUNDS_Q99): clip(2 (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)
    sample = dataset[3]
    q01, q99 = np.array(stats["q01"]), np.array(stats["q99"])
    expected = np.clip(2 * (np.asarray(sample["actions"], dtype=np.float64) - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)
    np.testing.assert_allclose(fitted(sample)["actions"].numpy(), expected, rtol=0, atol=1e-6)

    policy = Policy.from_pretrained(result.last_checkpoint, precision="fp32")
    assert isinstance(policy.processor, OpenVLAProcessor)
    frame = np.random.default_rng(5).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    out = policy.act({"images": {CAMERA: frame}, "task": TASKS[0], "state": np.zeros(5)})
    assert out.shape == (2, 3) and np.isfinite(out).all()
