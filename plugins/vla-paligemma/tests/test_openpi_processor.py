"""OpenPIProcessor's steps one by one: prompt tokens, camera slots, statistics, fitting and saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentencepiece
import torch
from vla_paligemma.openpi_images import parse_image, resize_with_pad
from vla_paligemma.openpi_norm_stats import NormStats, normalize, unnormalize
from vla_paligemma.openpi_processor import OpenPIProcessor
from vla_paligemma.openpi_tokenizer import PaligemmaPromptTokenizer

from vla_core.errors import ConfigError, DataError


@pytest.fixture
def tokenizer_file(spm_tokenizer_file: Path) -> Path:
    return spm_tokenizer_file


def test_prompts_as_openpi_writes_them(tokenizer_file: Path) -> None:
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_file))
    tokenizer = PaligemmaPromptTokenizer(tokenizer_file.parent, max_len=48)
    tokens, mask = tokenizer.tokenize(" open_the drawer\n")
    ids = sp.encode("open the drawer", add_bos=True) + sp.encode("\n")  # pi0: BOS task, then "\n" on its own
    assert tokens[: len(ids)].tolist() == ids and mask.sum() == len(ids) and not tokens[len(ids):].any()
    state = np.array([-1.2, -1.0, -0.999, 0.0, 0.9921875, 1.0, 3.0])
    assert tokenizer.prompt_text("stack it", state) == "Task: stack it, State: -1 0 0 128 255 255 255;\nAction: "
    short = PaligemmaPromptTokenizer(tokenizer_file, max_len=5)
    tokens, mask = short.tokenize("open the drawer", state)
    assert tokens.tolist() == sp.encode(short.prompt_text("open the drawer", state), add_bos=True)[:5] and mask.all()
    with pytest.raises(ConfigError, match="no SentencePiece tokenizer"):
        PaligemmaPromptTokenizer(tokenizer_file.parent / "missing", max_len=5)


def test_images_as_openpi_prepares_them() -> None:
    frame = np.random.default_rng(0).random((3, 30, 40)).astype(np.float32)
    parsed = parse_image(frame, "cam")  # float CHW -> (255 * x).astype(uint8) HWC, not rounded
    np.testing.assert_array_equal(parsed, (255 * frame).astype(np.uint8).transpose(1, 2, 0))
    padded = resize_with_pad(parsed, 224, 224)
    assert padded.shape == (224, 224, 3) and not padded[:27].any() and not padded[-27:].any() and padded[28:196].any()
    same = np.zeros((224, 224, 3), dtype=np.uint8)
    assert resize_with_pad(same, 224, 224) is same


def test_statistics_formulas_and_padding() -> None:
    stats = NormStats(mean=np.array([1.0, -2.0]), std=np.array([0.5, 0.0]), q01=np.array([0.0, -1.0]),
                      q99=np.array([2.0, -1.0]))
    x = np.array([2.0, -2.0])
    np.testing.assert_allclose(normalize(x, stats, False, "state"), [1.0 / (0.5 + 1e-6), 0.0])
    np.testing.assert_allclose(normalize(x, stats, True, "state"), [2.0 / (2 + 1e-6) * 2 - 1, -1.0 / 1e-6 * 2 - 1])
    wide = np.array([[0.5, 0.0, 7.0]])  # model output wider than the statistics
    np.testing.assert_allclose(unnormalize(wide, stats, False), [[0.5 * (0.5 + 1e-6) + 1.0, -2.0, 7.0 * (1 + 1e-6)]])
    np.testing.assert_allclose(unnormalize(wide, stats, True), [[1.5 / 2 * (2 + 1e-6), 0.5 * 1e-6 - 1.0, 7.0]])


def test_camera_map_and_bad_observations(tokenizer_file: Path, tmp_path: Path) -> None:
    stats_file = tmp_path / "norm_stats.json"
    stats_file.write_text('{"norm_stats": {"state": {"mean": [0, 0], "std": [1, 1]}, '
                          '"actions": {"mean": [0], "std": [1]}}}')
    processor = OpenPIProcessor(tokenizer=str(tokenizer_file), norm_stats=str(stats_file), model_action_dim=4,
                                cameras={"base_0_rgb": "top", "left_wrist_0_rgb": None, "right_wrist_0_rgb": "wrist"})
    frame = np.full((224, 224, 3), 255, dtype=np.uint8)
    sample = processor({"images": {"top": frame, "wrist": frame}, "task": "go", "state": [1.0, 2.0]})
    assert sample["img_masks"].tolist() == [True, False, True]
    assert (sample["images"][0] == 1).all() and (sample["images"][1] == -1).all()
    assert sample["states"].tolist() == pytest.approx([1 / (1 + 1e-6), 2 / (1 + 1e-6), 0, 0])
    assert processor.unnormalize_actions(torch.ones(2, 4)).shape == (2, 1)
    with pytest.raises(DataError, match="no image 'wrist'"):
        processor({"images": {"top": frame}, "task": "go", "state": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"cameras \['side'\] that no openpi slot reads"):
        processor({"images": {"top": frame, "wrist": frame, "side": frame}, "task": "go", "state": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"3 values but .* statistics for 2"):
        processor({"images": {"top": frame, "wrist": frame}, "task": "go", "state": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match="camera slots"):
        OpenPIProcessor(tokenizer=str(tokenizer_file), cameras={"front": "top"})


TOP_ONLY = {"base_0_rgb": "observation.images.top", "left_wrist_0_rgb": None, "right_wrist_0_rgb": None}


def write_dataset(root: Path, length: int = 10) -> Path:
    """A LeRobot v3.0 dataset: one 20 x 30 camera, a 3-dim state, 2-dim actions, two episodes."""
    from vla_core.data.lerobot_writer import LeRobotWriter

    features = {"observation.images.top": {"dtype": "image", "shape": [20, 30, 3]},
                "observation.state": {"dtype": "float32", "shape": [3]}, "action": {"dtype": "float32", "shape": [2]}}
    writer = LeRobotWriter.create(root, fps=10, features=features, robot_type="toy_arm")
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(length):
            writer.add_frame({"observation.images.top": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
                              "observation.state": rng.normal(size=3).astype(np.float32),
                              "action": (3 * rng.normal(size=2) + 1).astype(np.float32)}, task="pick_it up")
        writer.save_episode()
    writer.finalize()
    return root


def test_fit_on_a_lerobot_dataset_then_save_and_reload(tokenizer_file: Path, tmp_path: Path) -> None:
    from vla_core.data.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(str(write_dataset(tmp_path / "data")), chunk_size=4)
    processor = OpenPIProcessor(model_type="pi05", tokenizer=str(tokenizer_file), model_action_dim=6, chunk_size=4,
                                cameras=TOP_ONLY)
    processor.fit(dataset)
    assert (processor.state_dim, processor.action_dim) == (3, 2) and processor.use_quantiles
    actions = processor.norm_stats["actions"]
    assert (actions.q01 < actions.q99).all() and actions.mean.shape == (2,)
    sample = processor(dataset[5])
    assert sample["actions"].shape == (4, 6) and not sample["actions"][:, 2:].any() and sample["action_masks"].any()
    raw_actions = np.asarray(dataset[5]["actions"], dtype=np.float64)
    np.testing.assert_allclose(processor.unnormalize_actions(sample["actions"]), raw_actions, atol=1e-5)
    processor.save_pretrained(tmp_path / "ckpt")
    again = OpenPIProcessor.from_pretrained(tmp_path / "ckpt")
    for key, value in again(dataset[5]).items():
        assert torch.equal(value, sample[key]), key
    with pytest.raises(DataError, match="map them to openpi's slots"):
        OpenPIProcessor(tokenizer=str(tokenizer_file), chunk_size=4).fit(dataset)


def test_fine_tuning_pi05_with_the_preset_then_acting(tokenizer_file: Path, tmp_path: Path) -> None:
    """`vla train` with processor OpenPIProcessor: fitted, saved in every checkpoint, used by Policy."""
    import yaml

    from vla_core.config.run import validate_run_config
    from vla_core.engine.policy import Policy
    from vla_core.engine.trainer import Trainer
    from vla_core.plugin_manager import new_plugin_manager

    config = yaml.safe_load((Path(__file__).resolve().parents[3] / "configs" / "pi05_tiny.yaml").read_text())
    for key in ("discrete_state_input", "num_state_bins"):  # back to openpi's prompt state
        config["model"].pop(key)
    config["model"]["processor"] = {"type": "OpenPIProcessor", "model_type": "pi05", "tokenizer": str(tokenizer_file),
                                    "image_size": 32, "model_action_dim": 7, "chunk_size": 8, "cameras": TOP_ONLY}
    config |= {"data": {"type": "LeRobotDataset", "root": str(write_dataset(tmp_path / "data", 12)), "chunk_size": 8},
               "train": {"steps": 2, "batch_size": 2, "save_every": 2}, "output_dir": str(tmp_path / "run")}
    Trainer(validate_run_config(config), plugin_manager=new_plugin_manager()).fit()
    policy = Policy.from_pretrained(tmp_path / "run", precision="fp32")
    assert isinstance(policy.processor, OpenPIProcessor) and policy.processor.state_dim == 3
    frame = np.zeros((20, 30, 3), dtype=np.uint8)
    actions = policy.act({"images": {"observation.images.top": frame}, "task": "pick it", "state": [0.1, 0.2, 0.3]})
    assert actions.shape == (8, 2) and np.isfinite(actions).all()
