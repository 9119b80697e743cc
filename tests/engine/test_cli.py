"""`vla train`, `vla predict`, `vla export` end to end (in this process), and the torchrun
re-launch command line."""

from __future__ import annotations

import json
import sys

import numpy as np
import yaml
from engine_fixtures import CAMERA, lerobot_run_config

from vla_core.cli.train import torchrun_command
from vla_core.engine.metrics import read_metrics
from vla_core.precision import resolve_precision


def test_train_resume_predict_export(lerobot_root, tmp_path, vla_main):
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(lerobot_run_config(tmp_path / "out", lerobot_root, steps=4)))
    code, _, err = vla_main("train", str(config_path), "--set", "train.steps=2")
    assert code == 0, err
    assert "done: step 2" in err and [r["step"] for r in read_metrics(tmp_path / "out")] == [1, 2]
    # the header: what the run is, before the first step
    assert "parameters" in err and "trainable" in err and "precision fp32" in err
    assert "frames in 4 episodes" in err and f"output {tmp_path / 'out'}" in err

    code, _, err = vla_main("train", str(config_path), "--resume", "auto", "--set", "train.steps=3")
    assert code == 0, err
    assert "resumed from" in err and "step-2" in err
    assert [r["step"] for r in read_metrics(tmp_path / "out")] == [1, 2, 3]
    checkpoint = tmp_path / "out/checkpoints/step-3"

    code, out, err = vla_main("predict", str(checkpoint), "--dataset", str(lerobot_root), "--index", "3", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["shape"] == [4, 2] and np.isfinite(record["actions"]).all()
    assert np.asarray(record["dataset_actions"]).shape == (4, 2)
    assert f"precision {resolve_precision('auto', 'cpu').resolved} (auto: " in err  # the choice is printed
    # the run directory stands for its latest checkpoint, as in `vla eval`
    code, out_run, err = vla_main("predict", str(tmp_path / "out"), "--dataset", str(lerobot_root), "--index", "3",
                                  "--json")
    assert code == 0, err
    assert json.loads(out_run)["actions"] == record["actions"] and json.loads(out_run)["checkpoint"] == str(checkpoint)
    code, _, err = vla_main("predict", str(tmp_path / "out"), "--dataset", str(lerobot_root), "--precision", "fp16")
    assert code == 2 and "auto, fp32, bf16" in err

    from PIL import Image

    image_path = tmp_path / "frame.png"
    Image.fromarray(np.full((20, 24, 3), 128, dtype=np.uint8)).save(image_path)
    code, out, err = vla_main("predict", str(checkpoint), "--image", f"{CAMERA}={image_path}",
                              "--state", "0.1,0.2,0.3", "--instruction", "open the drawer")
    assert code == 0, err
    assert "action chunk (4, 2)" in out
    code, _, err = vla_main("predict", str(checkpoint), "--image", f"{CAMERA}={image_path}", "--state", "a,b")
    assert code == 2 and "comma-separated numbers" in err

    code, out, err = vla_main("export", str(checkpoint), "--out", str(tmp_path / "exported"))
    assert code == 0, err
    assert not (tmp_path / "exported/trainer_state").exists() and (tmp_path / "exported/processor").is_dir()
    code, out_exported, err = vla_main("predict", str(tmp_path / "exported"), "--dataset", str(lerobot_root),
                                       "--index", "3", "--json")
    assert code == 0, err
    assert json.loads(out_exported)["actions"] == record["actions"]


def test_torchrun_command_line_and_multi_node_needs_a_master(tmp_path, vla_main):
    single = torchrun_command(tmp_path / "c.yaml", ["train.steps=5"], "auto", 2, 1, 0, None, 29500, False)
    assert single[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in single and "--standalone" in single
    assert single[single.index("-m", 3):] == ["-m", "vla_core.cli", "train", str(tmp_path / "c.yaml"),
                                              "--set", "train.steps=5", "--resume", "auto"]
    multi = torchrun_command(tmp_path / "c.yaml", [], None, 8, 2, 1, "10.0.0.1", 29501, True)
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29501"} <= set(multi)
    assert "--standalone" not in multi and "--debug" in multi

    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(lerobot_run_config(tmp_path, tmp_path / "data")))
    code, _, err = vla_main("train", str(config_path), "--nnodes", "2")
    assert code == 2 and "--master-addr" in err


def test_predict_from_image_files_keeps_the_embodiment_id_of_the_checkpoint(lerobot_root, tmp_path):
    # The processor fills in the embodiment id of the data the checkpoint was trained on;
    # an observation from --image files must not override it (multi-embodiment heads pick
    # their weights by it).
    from PIL import Image

    from vla_core.cli.predict import observation_from_files
    from vla_core.data.lerobot_dataset import LeRobotDataset
    from vla_core.data.processor import VLAProcessor

    dataset = LeRobotDataset(str(lerobot_root), chunk_size=4, embodiment={"embodiment_id": 3})
    processor = VLAProcessor(image_size=16, max_state_dim=4, max_action_dim=3, chunk_size=4).fit(dataset)
    image_path = tmp_path / "frame.png"
    Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8)).save(image_path)
    observation = observation_from_files([f"{CAMERA}={image_path}"], "0.1,0.2,0.3", "open the drawer")
    assert int(processor(observation)["embodiment_id"]) == 3
