"""VLAProcessor: raw samples -> the sample schema, un-normalisation, saving, checkpoint loading."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.processor import VLAProcessor
from vla_core.data.stats import DatasetStatistics
from vla_core.errors import CheckpointError, ConfigError, DataError
from vla_core.models.pretrained import load_processor

CHUNK = 4


@pytest.fixture(scope="module")
def dataset(v30_video_root):
    return LeRobotDataset(
        str(v30_video_root),
        chunk_size=CHUNK,
        embodiment={
            "state": [{"key": "observation.state", "norm": "mean_std"}],
            "action": [{"key": "action", "norm": "min_max"}],
        },
    )


@pytest.fixture(scope="module")
def processor(dataset):
    return VLAProcessor(image_size=32, max_lang_len=8, max_state_dim=10, max_action_dim=9, chunk_size=CHUNK).fit(
        dataset
    )


def test_sample_follows_the_schema(processor, dataset):
    sample = processor(dataset[10])
    assert sample["images"].shape == (2, 3, 32, 32) and sample["images"].dtype == torch.float32
    assert sample["img_masks"].tolist() == [True, True]
    assert sample["lang_tokens"].shape == (8,) and sample["lang_tokens"].dtype == torch.int64
    assert sample["lang_masks"].tolist() == [True] * 5 + [False] * 3  # "pick up the red cube"
    assert sample["states"].shape == (10,) and sample["actions"].shape == (CHUNK, 9)
    assert sample["action_masks"].tolist() == [True, True, False, False]  # frame 10 of a 12-frame episode
    assert sample["embodiment_id"].dtype == torch.int64 and sample["embodiment_id"].ndim == 0
    batch = processor.collate([processor(dataset[i]) for i in (0, 10, 20)])
    assert batch["images"].shape == (3, 2, 3, 32, 32) and batch["actions"].shape == (3, CHUNK, 9)


def test_state_and_actions_are_normalised_with_the_datasets_stats(processor, dataset):
    raw = dataset[10]
    sample = processor(raw)
    state_stats = dataset.stats["observation.state"]
    want_state = (raw["state"] - state_stats["mean"]) / (state_stats["std"] + 1e-8)
    np.testing.assert_allclose(sample["states"][:8].numpy(), want_state, rtol=1e-6)
    assert sample["states"][8:].abs().sum() == 0  # zero padding to max_state_dim
    low, high = dataset.stats["action"]["min"], dataset.stats["action"]["max"]
    want_actions = 2 * (raw["actions"] - low) / (high - low) - 1  # lerobot's MIN_MAX
    np.testing.assert_allclose(sample["actions"][:, :7].numpy(), want_actions, rtol=1e-6, atol=1e-7)
    assert sample["actions"][:, 7:].abs().sum() == 0


def test_unnormalize_inverts_normalise(processor, dataset):
    batch = processor.collate([processor(dataset[i]) for i in (3, 11, 30)])
    actions = processor.unnormalize_actions(batch["actions"])
    assert actions.shape == (3, CHUNK, 7) and actions.dtype == torch.float32
    want = torch.from_numpy(np.stack([dataset[i]["actions"] for i in (3, 11, 30)]))
    torch.testing.assert_close(actions, want, rtol=0, atol=1e-4)  # float32 round trip of values up to 213


def test_images_are_resized_and_normalised(processor, dataset):
    raw = dataset[5]
    top = torch.from_numpy(raw["images"]["observation.images.top"]).permute(2, 0, 1).float()[None] / 255
    want = F.interpolate(top, size=(32, 32), mode="bilinear", antialias=True)[0].clamp(0, 1)
    torch.testing.assert_close(processor(raw)["images"][0], (want - 0.5) / 0.5)
    # lerobot's convention (float CHW in [0, 1]) gives the same result as uint8 HWC
    chw = {k: v.transpose(2, 0, 1).astype(np.float32) / 255 for k, v in raw["images"].items()}
    torch.testing.assert_close(processor({**raw, "images": chw})["images"], processor(raw)["images"])
    same = VLAProcessor(
        image_size=64,
        chunk_size=CHUNK,
        max_state_dim=8,
        max_action_dim=7,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).fit(dataset)
    pixels = torch.from_numpy(raw["images"]["observation.images.top"]).permute(2, 0, 1) / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(same(raw)["images"][0], (pixels - mean[:, None, None]) / std[:, None, None])


def test_resize_with_pad_keeps_the_aspect_ratio(dataset):
    processor = VLAProcessor(
        image_size=[32, 64], resize_with_pad=True, chunk_size=CHUNK, max_state_dim=8, max_action_dim=7
    ).fit(dataset)
    image = processor(dataset[0])["images"][0]  # a 64x64 camera into 32x64: 32x32 centred, black sides
    assert image.shape == (3, 32, 64)
    assert (image[:, :, :16] == -1).all() and (image[:, :, 48:] == -1).all()
    assert (image[:, :, 16:48] > -1).any()


def test_word_tokenizer(processor):
    tokens, mask = processor.tokenizer.encode("Pick up the RED cube!", 8)
    again, _ = processor.tokenizer.encode("pick up the red cube !", 8)
    assert torch.equal(tokens, again)  # lower-cased; punctuation is its own token
    assert tokens[5].item() == 1 and mask.sum() == 6  # "!" is not in the vocabulary -> unknown
    assert tokens[6:].tolist() == [0, 0]
    assert processor.vocab_size == 2 + len({"pick", "up", "the", "red", "cube", "open", "drawer"})
    long_tokens, long_mask = processor.tokenizer.encode("pick " * 20, 8)
    assert long_mask.all() and long_tokens.shape == (8,)


def test_hf_tokenizer_from_a_local_directory(tmp_path, dataset):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "pick": 3, "up": 4, "the": 5, "red": 6, "cube": 7, "open": 8}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]")
    fast.save_pretrained(tmp_path / "tok")
    processor = VLAProcessor(
        tokenizer=str(tmp_path / "tok"),
        max_lang_len=6,
        chunk_size=CHUNK,
        image_size=16,
        max_state_dim=8,
        max_action_dim=7,
    ).fit(dataset)
    sample = processor(dataset[20])  # episode 1: "open the drawer"
    assert sample["lang_tokens"].tolist() == [8, 5, 1, 0, 0, 0] and sample["lang_masks"].sum() == 3
    processor.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "tok")  # the checkpoint carries its own copy
    loaded = VLAProcessor.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(loaded(dataset[20])["lang_tokens"], sample["lang_tokens"]) and loaded.vocab_size == 9
    with pytest.raises(ConfigError, match=r"tokenizer directory .* does not exist"):
        VLAProcessor(tokenizer=str(tmp_path / "tok"))


def test_save_and_load_give_identical_samples(processor, dataset, tmp_path):
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "dataset_statistics.json").is_file()
    assert sorted(p.name for p in (tmp_path / "processor").iterdir()) == ["processor_config.json", "vocab.json"]
    loaded = load_processor(tmp_path)
    assert isinstance(loaded, VLAProcessor) and loaded.cameras == processor.cameras
    for i in (0, 10, 35):
        a, b = processor(dataset[i]), loaded(dataset[i])
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert DatasetStatistics.load(tmp_path).fingerprint == dataset.fingerprint
    processor.save_pretrained(tmp_path)  # saving again replaces both
    assert load_processor(tmp_path / "nothing") is None


def test_inference_observation_without_actions(processor, dataset):
    raw = dataset[7]
    observation = {"images": raw["images"], "task": raw["task"], "state": raw["state"].tolist()}
    sample = processor(observation)
    assert "actions" not in sample and "action_masks" not in sample
    assert torch.equal(sample["states"], processor(raw)["states"])
    assert sample["embodiment_id"].item() == 0


def test_load_pretrained_attaches_the_processor_and_predicts_in_robot_units(dataset, tmp_path):
    """The whole inference path: checkpoint -> load_pretrained -> vla.processor ->
    predict_action -> unnormalize_actions, in the dataset's action units."""
    import vla_core
    from vla_core.testing import tiny_vla_spec

    processor_spec = {
        "type": "VLAProcessor",
        "image_size": 32,
        "max_lang_len": 8,
        "max_state_dim": 8,
        "max_action_dim": 7,
        "chunk_size": CHUNK,
    }
    head = {
        "type": "MLPActionHead",
        "input_dim": 48,
        "action_dim": 7,
        "chunk_size": CHUNK,
        "state_dim": 8,
        "hidden_dim": 32,
    }
    torch.manual_seed(0)
    vla = vla_core.build_vla({**tiny_vla_spec(head=head), "processor": processor_spec})
    processor = vla_core.build_component("processors", processor_spec).fit(dataset)
    assert processor.vocab_size <= 64  # the tiny Qwen2's vocabulary
    vla.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")

    loaded = vla_core.load_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded.processor, VLAProcessor)
    raw = dataset[3]
    observation = {"images": raw["images"], "task": raw["task"], "state": raw["state"]}
    batch = loaded.processor.collate([loaded.processor(observation)])
    with torch.no_grad():
        normalised = loaded.predict_action(**batch)
        want = vla.eval().predict_action(**processor.collate([processor(observation)]))
    actions = loaded.processor.unnormalize_actions(normalised)
    assert actions.shape == (1, CHUNK, 7)
    torch.testing.assert_close(actions, processor.unnormalize_actions(want))
    # min_max (the embodiment's action mode): robot units = min + (output + 1) / 2 * (max - min)
    low, high = dataset.stats["action"]["min"], dataset.stats["action"]["max"]
    want_units = low + (normalised[0].double().numpy() + 1) / 2 * (high - low)
    np.testing.assert_allclose(actions[0].numpy(), want_units, rtol=1e-5)


def test_a_processor_registered_under_another_name_loads_with_its_checkpoint(dataset, tmp_path, register_component):
    """The class that loads a checkpoint's processor is the one the model config names, as in
    training, not the Python class name the processor recorded."""
    import vla_core
    from vla_core.engine.policy import Policy
    from vla_core.testing import tiny_vla_spec

    class SiteProcessor(VLAProcessor):
        """A site's processor: VLAProcessor under its own registry name."""

    register_component("processors", "site-processor", SiteProcessor)
    processor_spec = {"type": "site-processor", "image_size": 32, "max_lang_len": 8, "max_state_dim": 8,
                      "max_action_dim": 7, "chunk_size": CHUNK}
    head = {"type": "MLPActionHead", "input_dim": 48, "action_dim": 7, "chunk_size": CHUNK, "state_dim": 8}
    vla = vla_core.build_vla({**tiny_vla_spec(head=head), "processor": processor_spec})
    vla.save_pretrained(tmp_path / "ckpt")
    vla_core.build_component("processors", processor_spec).fit(dataset).save_pretrained(tmp_path / "ckpt")

    assert type(vla_core.load_pretrained(tmp_path / "ckpt").processor) is SiteProcessor
    policy = Policy.from_pretrained(tmp_path / "ckpt")
    assert type(policy.processor) is SiteProcessor and policy.act(dataset[3]).shape == (CHUNK, 7)


def test_a_checkpoint_without_a_processor_loads_but_cannot_serve_raw_observations(tmp_path):
    import vla_core
    from vla_core.engine.policy import Policy
    from vla_core.testing import tiny_vla_spec

    vla_core.build_vla(tiny_vla_spec()).save_pretrained(tmp_path / "ckpt")
    assert vla_core.load_pretrained(tmp_path / "ckpt").processor is None
    with pytest.raises(CheckpointError, match="holds no processor"):
        Policy.from_pretrained(tmp_path / "ckpt")


# ---- bad input ------------------------------------------------------------------------------
def test_stats_that_do_not_match_the_checkpoint(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "dataset_statistics.json").read_text())
    feature = raw["features"].pop("observation.state")
    raw["features"] = {"observation.joints": {**feature, "dim": 8}, **raw["features"]}
    (tmp_path / "dataset_statistics.json").write_text(json.dumps(raw))
    with pytest.raises(DataError) as info:
        VLAProcessor.from_pretrained(tmp_path)
    assert "state features are [observation.joints (8)] here but [observation.state (8)]" in str(info.value)
    (tmp_path / "dataset_statistics.json").unlink()
    with pytest.raises(DataError, match="has no normalisation statistics"):
        VLAProcessor.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"has no processor/processor_config\.json"):
        VLAProcessor.from_pretrained(tmp_path / "elsewhere")


def test_a_dataset_of_another_embodiment_is_refused(processor, v21_image_root):
    processor.check_dataset(LeRobotDataset(str(v21_image_root), chunk_size=CHUNK))  # same keys and dims
    other = LeRobotDataset(
        str(v21_image_root), chunk_size=CHUNK, embodiment={"cameras": [], "action": ["observation.state"]}
    )
    with pytest.raises(DataError, match=r"action features are \[action \(7\)\] here but \[observation.state \(8\)\]"):
        processor.check_dataset(other)


def test_dims_larger_than_the_models_max(dataset):
    with pytest.raises(DataError, match=r"the state \(observation\.state\) has 8 dims, more than the processor's"):
        VLAProcessor(max_state_dim=6, chunk_size=CHUNK).fit(dataset)
    with pytest.raises(DataError, match="max_action_dim=4"):
        VLAProcessor(max_action_dim=4, chunk_size=CHUNK).fit(dataset)


def test_processing_errors(processor, dataset):
    raw = dataset[0]
    with pytest.raises(DataError, match="not fitted"):
        VLAProcessor()(raw)
    with pytest.raises(DataError, match="expects chunk_size=2"):
        VLAProcessor(chunk_size=2).fit(dataset)
    with pytest.raises(DataError, match=r"no image for camera 'observation\.images\.wrist'"):
        processor({**raw, "images": {"observation.images.top": raw["images"]["observation.images.top"]}})
    with pytest.raises(DataError, match="the state has 7 values but the processor was fitted on 8"):
        processor({**raw, "state": raw["state"][:7]})
    with pytest.raises(DataError, match="no 'task'"):
        processor({k: v for k, v in raw.items() if k != "task"})
    lenient = VLAProcessor(
        image_size=32, chunk_size=CHUNK, max_state_dim=8, max_action_dim=7, allow_missing_cameras=True
    ).fit(dataset)
    sample = lenient({**raw, "images": {"observation.images.top": raw["images"]["observation.images.top"]}})
    assert sample["img_masks"].tolist() == [True, False] and sample["images"][1].abs().sum() == 0


def test_config_is_validated_like_any_component():
    import vla_core

    with pytest.raises(ConfigError, match="max_lang_lenn"):
        vla_core.build_component("processors", {"type": "VLAProcessor", "max_lang_lenn": 8})
    with pytest.raises(ConfigError, match="state_norm"):
        vla_core.build_component("processors", {"type": "VLAProcessor", "state_norm": "zscore"})


def test_the_processor_protocol_is_what_training_and_inference_call(processor):
    from vla_core.protocols import Processor

    assert isinstance(processor, Processor)

    class OnlyCallsAndSaves:  # the engine would fail on fit / collate / unnormalize_actions / from_pretrained
        def __call__(self, observation):
            return observation

        def save_pretrained(self, directory):
            pass

    assert not isinstance(OnlyCallsAndSaves(), Processor)
