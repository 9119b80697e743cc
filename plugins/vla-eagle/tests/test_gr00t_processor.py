"""The gr00t preset's parts against Isaac-GR00T's definitions: the per-key Normalizer, embodiment
tags, metadata.json, the eval image steps, and GR00TProcessor's own behaviour (key orders, flat
or per-key state, saving). The whole pipeline against the reference: tests/integration/
test_gr00t_n15_checkpoint.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from vla_eagle.embodiment_tags import embodiment_index
from vla_eagle.gr00t_images import center_crop, gr00t_eval_frame
from vla_eagle.gr00t_metadata import select_embodiment
from vla_eagle.gr00t_normalizer import normalize, unnormalize
from vla_eagle.gr00t_processor import GR00TProcessor

from vla_core.errors import CheckpointError, ConfigError, DataError

STATS = {"min": np.array([-1.0, 2.0, 0.0]), "max": np.array([1.0, 2.0, 4.0]), "q01": np.array([-0.5, 2.0, 1.0]),
         "q99": np.array([0.5, 2.0, 3.0]), "mean": np.array([0.0, 2.0, 1.0]), "std": np.array([0.5, 0.0, 2.0])}
X = torch.tensor([[0.75, 2.5, 5.0], [-2.0, 1.0, 2.0]], dtype=torch.float64)


def test_min_max_maps_a_constant_feature_to_zero_and_does_not_clip():
    out = normalize(X, "min_max", STATS)
    # Normalizer.forward("min_max"): 2 (x - min) / (max - min) - 1 where min != max, else 0
    np.testing.assert_allclose(out.numpy(), [[0.75, 0.0, 1.5], [-2.0, 0.0, 0.0]])
    back = unnormalize(out, "min_max", STATS)  # Normalizer.inverse: the constant feature comes back as min
    np.testing.assert_allclose(back.numpy(), [[0.75, 2.0, 5.0], [-2.0, 2.0, 2.0]])


def test_q99_clips_and_keeps_a_constant_feature_before_clipping():
    out = normalize(X, "q99", STATS)
    # 2 (x - q01) / (q99 - q01) - 1 where q01 != q99, x where equal, then clipped to [-1, 1]
    np.testing.assert_allclose(out.numpy(), [[1.0, 1.0, 1.0], [-1.0, 1.0, 0.0]])
    np.testing.assert_allclose(unnormalize(torch.tensor([[0.0, 0.5, -1.0]]), "q99", STATS).numpy(), [[0.0, 2.0, 1.0]])


def test_mean_std_binary_and_none():
    np.testing.assert_allclose(normalize(X, "mean_std", STATS).numpy(), [[1.5, 2.5, 2.0], [-4.0, 1.0, 0.5]])
    assert normalize(X, "binary", STATS).tolist() == [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    assert torch.equal(normalize(X, "none", STATS), X)
    assert normalize(X.float(), "min_max", STATS).dtype == torch.float32  # computed in the input's dtype


def test_embodiment_tags_select_gr00t_projectors():
    assert embodiment_index("new_embodiment") == 31 and embodiment_index("gr1") == 24
    assert embodiment_index("oxe_droid") == 17 and embodiment_index("agibot_genie1") == 26
    assert embodiment_index("genie1_gripper") == 26  # GR00T N1's name
    assert embodiment_index("my_arm", {"my_arm": 5}) == 5
    with pytest.raises(ConfigError, match="new_embodiment"):
        embodiment_index("so100")


def test_center_crop_and_resize_follow_torchvision():
    import torchvision.transforms.v2 as T

    frame = np.random.default_rng(0).integers(0, 256, size=(31, 45, 3), dtype=np.uint8)
    pixels = torch.from_numpy(frame).float().div(255).permute(2, 0, 1)
    for scale in (0.95, 0.9, 0.5):
        size = (int(31 * scale), int(45 * scale))
        assert torch.equal(center_crop(pixels, scale), T.CenterCrop(size)(pixels))
    expected = T.Resize((28, 28), antialias=True)(T.CenterCrop((29, 42))(pixels[None]))[0]
    assert torch.equal(gr00t_eval_frame(frame, "cam", 0.95, 28), (expected * 255).to(torch.uint8))
    with pytest.raises(DataError, match="uint8"):
        gr00t_eval_frame(frame.astype(np.float32), "cam", 0.95, 28)


def metadata(tags=("new_embodiment",)) -> dict:
    entry = {
        "statistics": {
            "state": {"arm": {k: list(v) for k, v in STATS.items()}, "grip": {k: [v[0]] for k, v in STATS.items()}},
            "action": {"arm": {k: list(v) for k, v in STATS.items()}, "grip": {k: [v[2]] for k, v in STATS.items()}},
        },
        "modalities": {
            "video": {"front": {"resolution": [32, 24], "channels": 3, "fps": 10}, "wrist": {"resolution": [32, 24],
                                                                                         "channels": 3, "fps": 10}},
            "state": {"arm": {"shape": [3]}, "grip": {"shape": [1]}},
            "action": {"arm": {"shape": [3]}, "grip": {"shape": [1]}},
        },
    }
    return {tag: entry for tag in tags}


def test_metadata_needs_a_tag_when_it_holds_several():
    with pytest.raises(CheckpointError, match="several embodiments"):
        select_embodiment(metadata(("gr1", "oxe_droid")), None, "metadata.json")
    assert select_embodiment(metadata(("gr1", "oxe_droid")), "gr1", "m").dims["action"] == {"arm": 3, "grip": 1}
    broken = metadata()
    del broken["new_embodiment"]["statistics"]["action"]["grip"]
    with pytest.raises(CheckpointError, match="no statistics"):
        select_embodiment(broken, None, "metadata.json")


@pytest.fixture(scope="module")
def processor_files(tmp_path_factory) -> tuple[Path, Path]:
    """metadata.json and a tokenizer directory with Eagle's special tokens (trained here)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("gr00t_processor")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<IMG_CONTEXT>", "<img>", "</img>"]
    tok.train_from_iterator(["pick the cube", "You are a helpful assistant."],
                            trainers.BpeTrainer(vocab_size=280, special_tokens=special,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>").save_pretrained(str(root / "eagle"))
    (root / "eagle" / "processor_config.json").write_text(json.dumps({"tokens_per_tile": 4}))
    (root / "metadata.json").write_text(json.dumps(metadata(("gr1", "new_embodiment"))))
    return root / "metadata.json", root / "eagle"


def observation(state) -> dict:
    rng = np.random.default_rng(1)
    frames = {k: rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8) for k in ("front", "wrist")}
    return {"images": frames, "task": "pick the cube", "state": state}


def test_processor_prepares_gr00t_inputs(processor_files):
    meta, eagle = processor_files
    processor = GR00TProcessor(metadata=str(meta), tokenizer=str(eagle), embodiment_tag="gr1", image_size=28,
                               state_norm={"arm": "q99", "grip": "min_max"}, max_state_dim=6, max_action_dim=5)
    assert processor.embodiment_id == 24 and processor.cameras == ["front", "wrist"]
    per_key = processor(observation({"arm": [0.75, 2.5, 5.0], "state.grip": [0.0]}))
    flat = processor(observation(np.array([0.75, 2.5, 5.0, 0.0])))
    assert torch.equal(per_key["states"], flat["states"])
    # arm: q99, clipped (a constant q01 == q99 feature keeps x = 2.5, then clipped); grip: min_max
    np.testing.assert_allclose(per_key["states"].numpy(), [1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    assert per_key["images"].shape == (2, 3, 28, 28)
    context = processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert int((per_key["lang_tokens"] == context).sum()) == 2 * 4  # two cameras, 4 tokens per tile
    # camera order follows video_keys
    swapped = GR00TProcessor(metadata=str(meta), tokenizer=str(eagle), embodiment_tag="gr1", image_size=28,
                             video_keys=["video.wrist", "front"])
    assert torch.equal(swapped(observation([0.0] * 4))["images"][0], per_key["images"][1])
    with pytest.raises(DataError, match="no image for camera 'wrist'"):
        processor({**observation([0.0] * 4), "images": {"front": observation([0.0])["images"]["front"]}})
    with pytest.raises(DataError, match="grip"):
        processor(observation({"arm": [0.0, 0.0, 0.0]}))


def test_actions_leave_per_key_in_robot_units(processor_files):
    meta, eagle = processor_files
    processor = GR00TProcessor(metadata=str(meta), tokenizer=str(eagle), embodiment_tag="new_embodiment",
                               action_keys=["grip", "arm"], max_action_dim=6)
    normalised = torch.tensor([[[0.0, -1.0, 1.0, 0.0, 9.0, 9.0]]])  # grip first; the padded dims are dropped
    robot = processor.unnormalize_actions(normalised)
    # min_max inverse: (x + 1) / 2 (max - min) + min; grip uses the third statistic (0 .. 4)
    np.testing.assert_allclose(robot.numpy(), [[[2.0, -1.0, 2.0, 2.0]]])
    split = processor.split_actions(robot[0, 0].numpy())
    assert list(split) == ["action.grip", "action.arm"] and split["action.arm"].shape == (3,)
    with pytest.raises(ConfigError, match="max_action_dim"):
        GR00TProcessor(metadata=str(meta), tokenizer=str(eagle), embodiment_tag="gr1", max_action_dim=3)


def test_processor_saves_and_loads_back(processor_files, tmp_path):
    meta, eagle = processor_files
    processor = GR00TProcessor(metadata=str(meta), tokenizer=str(eagle), embodiment_tag="gr1", image_size=28,
                               crop_scale=None, action_norm="q99")
    processor.save_pretrained(tmp_path)
    loaded = GR00TProcessor.from_pretrained(tmp_path)
    assert loaded.meta is not None and loaded.meta.tag == "gr1" and loaded.config == processor.config | {
        "embodiment_tag": "gr1"}
    obs = observation([0.1, 2.0, 3.0, 0.5])
    for key, value in processor(obs).items():
        assert torch.equal(value, loaded(obs)[key]), key
    from vla_core.models.pretrained import load_processor

    assert type(load_processor(tmp_path)).__name__ == "GR00TProcessor"  # picked by the recorded type


def test_bad_settings_are_config_errors(processor_files):
    meta, eagle = processor_files
    with pytest.raises(ConfigError, match="elbow"):
        GR00TProcessor(metadata=str(meta), tokenizer=str(eagle), embodiment_tag="gr1", state_keys=["elbow"])
    with pytest.raises(ConfigError, match="crop"):
        GR00TProcessor(crop_scale=1.5)
    with pytest.raises(CheckpointError, match=r"metadata\.json"):
        GR00TProcessor(metadata=str(meta.parent / "missing" / "metadata.json"))
