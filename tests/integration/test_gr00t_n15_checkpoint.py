"""A GR00T N1.5 checkpoint in the released layout -> `Policy.act(raw observation)` -> robot units,
against the reference pipeline recomputed here step by step.

The tiny checkpoint has what a released one has: `config.json` (model_type gr00t_n1_5,
backbone_cfg, action_head_cfg), GR00T-named weights in sharded `model-*.safetensors`,
`experiment_cfg/metadata.json`, and Eagle's processor directory `eagle2_hg_model/` (a
byte-level BPE tokenizer trained here with `tokenizers`, the image markup and image settings,
and Eagle's config.json). Nothing is downloaded. The model math itself (Eagle backbone, flow
head) equals the reference in tests/test_eagle_backbone.py and test_reference_parity.py; here
the steps around it are checked, each on its own line with the reference function it follows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

TINY_SIZE, TOKENS_PER_IMAGE = 28, 4  # SigLIP 28 px, patch 14 -> 2 x 2 tokens per image (one Eagle tile)
HORIZON, MAX_ACTION, MAX_STATE = 4, 8, 12
CAMERA_W, CAMERA_H = 40, 30  # metadata resolution is (width, height)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<IMG_CONTEXT>", "<img>", "</img>"]
TASK = "Pick up the red cube, then place it in the bowl."

METADATA = {
    "new_embodiment": {
        "statistics": {
            "state": {
                # the third feature is constant (min == max): the reference maps it to 0
                "single_arm": {"min": [-1.0, 0.0, 0.5], "max": [1.0, 2.0, 0.5], "mean": [0.0, 1.0, 0.5],
                               "std": [0.5, 0.5, 0.0], "q01": [-0.9, 0.1, 0.5], "q99": [0.9, 1.9, 0.5]},
                "gripper": {"min": [0.0], "max": [0.08], "mean": [0.04], "std": [0.02], "q01": [0.0],
                            "q99": [0.08]},
            },
            "action": {
                "single_arm": {"min": [-2.0, -1.0, 0.0], "max": [2.0, 3.0, 1.0], "mean": [0.0, 1.0, 0.5],
                               "std": [1.0, 1.0, 0.3], "q01": [-1.8, -0.8, 0.05], "q99": [1.8, 2.8, 0.95]},
                "gripper": {"min": [0.0], "max": [1.0], "mean": [0.5], "std": [0.5], "q01": [0.0], "q99": [1.0]},
            },
        },
        "modalities": {
            "video": {"webcam": {"resolution": [CAMERA_W, CAMERA_H], "channels": 3, "fps": 30.0}},
            "state": {"single_arm": {"absolute": True, "rotation_type": None, "shape": [3], "continuous": True},
                      "gripper": {"absolute": True, "rotation_type": None, "shape": [1], "continuous": True}},
            "action": {"single_arm": {"absolute": True, "rotation_type": None, "shape": [3], "continuous": True},
                       "gripper": {"absolute": True, "rotation_type": None, "shape": [1], "continuous": True}},
        },
        "embodiment_tag": "new_embodiment",
    }
}


def train_tokenizer(directory: Path):
    """A byte-level BPE tokenizer with Eagle's special tokens, saved as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [TASK, "system You are a helpful assistant. user assistant", "<image 1> pick place cube bowl red"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # the trainer registers SPECIAL as special tokens, so they are never split
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    fast.save_pretrained(str(directory))
    return fast


def eagle_config(vocab_size: int, image_token_id: int) -> dict:
    return {
        "model_type": "eagle_2_5_vl", "select_layer": -1,
        # as Eagle's: remote code named, never run (the tokenizer loads with trust_remote_code=False)
        "auto_map": {"AutoConfig": "configuration_eagle2_5_vl.Eagle2_5_VLConfig",
                     "AutoModel": "modeling_eagle2_5_vl.Eagle2_5_VLForConditionalGeneration"},
        "use_pixel_shuffle": False, "mlp_connector_layers": 1,
        "downsample_ratio": 0.5, "image_token_index": image_token_id,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                          "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": TINY_SIZE,
                          "patch_size": 14, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6},
        "text_config": {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": vocab_size,
                        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                        "max_position_embeddings": 256, "rope_theta": 10000.0, "tie_word_embeddings": True},
    }


ACTION_HEAD_CFG = {
    "action_dim": MAX_ACTION, "action_horizon": HORIZON, "add_pos_embed": True, "backbone_embedding_dim": 32,
    "diffusion_model_cfg": {"attention_head_dim": 8, "cross_attention_dim": 32, "dropout": 0.2,
                            "final_dropout": True, "interleave_self_attention": True, "norm_type": "ada_norm",
                            "num_attention_heads": 2, "num_layers": 2, "output_dim": 24,
                            "positional_embeddings": None},
    "hidden_size": 24, "input_embedding_dim": 16, "max_action_dim": MAX_ACTION, "max_state_dim": MAX_STATE,
    "max_num_embodiments": 32, "max_seq_len": 16, "num_inference_timesteps": 4, "num_target_vision_tokens": 3,
    "use_vlln": True,
    "vl_self_attention_cfg": {"attention_head_dim": 16, "dropout": 0.2, "final_dropout": True,
                              "num_attention_heads": 2, "num_layers": 1, "positional_embeddings": None},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny GR00T N1.5 checkpoint directory in the released layout, with random weights."""
    from vla_core.models import build_vla

    root = tmp_path_factory.mktemp("gr00t") / "GR00T-N1.5-tiny"
    eagle = root / "eagle2_hg_model"
    eagle.mkdir(parents=True)
    tokenizer = train_tokenizer(eagle)
    image_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    (eagle / "config.json").write_text(json.dumps(eagle_config(len(tokenizer), image_token_id)))
    (eagle / "processor_config.json").write_text(json.dumps(
        {"image_token": "<IMG_CONTEXT>", "image_start_token": "<img>", "image_end_token": "</img>",
         "tokens_per_tile": TOKENS_PER_IMAGE}))
    (eagle / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": TINY_SIZE,
                                                                               "width": TINY_SIZE}}))
    (root / "experiment_cfg").mkdir()
    (root / "experiment_cfg" / "metadata.json").write_text(json.dumps(METADATA))
    config = {"model_type": "gr00t_n1_5", "architectures": ["GR00T_N1_5"], "action_dim": MAX_ACTION,
              "action_horizon": HORIZON, "compute_dtype": "bfloat16", "model_dtype": "float32",
              "backbone_cfg": {"eagle_path": "NVEagle/eagle_er-qwen3_1_7B-Siglip2_400M", "load_bf16": False,
                               "project_to_dim": None, "reproject_vision": False, "select_layer": 2,
                               "tune_llm": False, "tune_visual": True, "use_flash_attention": True},
              "action_head_cfg": ACTION_HEAD_CFG}
    (root / "config.json").write_text(json.dumps(config))

    # Random weights under GR00T's names (backbone.*, action_head.*), in two shards with an index.
    torch.manual_seed(0)
    runtime = ("model_type", "architectures")  # config.json bookkeeping, not architecture
    text = {k: v for k, v in eagle_config(len(tokenizer), image_token_id)["text_config"].items() if k not in runtime}
    vision = {k: v for k, v in eagle_config(len(tokenizer), image_token_id)["vision_config"].items()
              if k not in runtime}
    model = build_vla({
        "type": "LlavaVLA",
        "vlm_backbone": {"type": "EagleBackbone", "preset": None, "vision_config": vision, "text_config": text,
                         "select_layer": 2, "image_token_id": image_token_id},
        "vla_head": {"type": "FlowMatchingHead", "backbone_embedding_dim": 32, "state_dim": MAX_STATE,
                     "action_dim": MAX_ACTION, "traj_length": HORIZON, "hidden_size": 24, "input_embedding_dim": 16,
                     "num_layers": 2, "num_heads": 2, "vl_self_attention_layers": 1, "vl_self_attention_heads": 2,
                     "num_target_vision_tokens": 3, "max_seq_len": 16},
    })
    renamed = {k.replace("vlm_backbone.", "backbone.", 1).replace("vla_head.", "action_head.", 1):
               v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    with torch.no_grad():  # GR00T's action head is far from zero after training; make the decoder matter
        for key in [k for k in renamed if k.startswith("action_head.action_decoder")]:
            renamed[key].normal_(0, 0.5)
    names = sorted(renamed)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    for file, keys in shards.items():
        save_file({k: renamed[k] for k in keys}, str(root / file))
    index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    return root


def raw_observation() -> dict:
    rng = np.random.default_rng(3)
    return {
        "images": {"webcam": rng.integers(0, 256, size=(CAMERA_H, CAMERA_W, 3), dtype=np.uint8)},
        "task": TASK,
        "state": {"single_arm": np.array([0.3, 2.5, 0.7]), "gripper": np.array([0.02])},
    }


def reference_actions(checkpoint: Path, vla, observation: dict, noise: torch.Tensor) -> np.ndarray:
    """Isaac-GR00T N1.5's Gr00tPolicy.get_action on `observation`, one reference step per line."""
    import torchvision.transforms.v2 as T
    from PIL import Image
    from transformers import AutoTokenizer

    meta = METADATA["new_embodiment"]
    # -- video: gr00t/data/transform/video.py, eval mode --
    frame = observation["images"]["webcam"]
    x = torch.from_numpy(frame).to(torch.float32).div(255.0).permute(2, 0, 1)[None]  # VideoToTensor.to_tensor
    x = T.CenterCrop((int(CAMERA_H * 0.95), int(CAMERA_W * 0.95)))(x)  # VideoCrop.get_transform("eval")
    x = T.Resize((TINY_SIZE, TINY_SIZE), interpolation=T.InterpolationMode.BILINEAR, antialias=True)(x)  # VideoResize
    x = (x.permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()  # VideoToNumpy.to_numpy
    pil = Image.fromarray(x[0])  # transforms.py GR00TTransform._apply_vlm_processing: PIL images
    pixels = torch.from_numpy(np.array(pil)).permute(2, 0, 1)  # Eagle image processor: one tile at its size
    pixels = (pixels.to(torch.float32) - 127.5) / 127.5  # image_processing_eagle2_5_vl_fast rescale_and_normalize
    # -- language: transforms.py _apply_vlm_processing + processing_eagle2_5_vl.py --
    text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image-1>"
            f"{TASK}<|im_end|>\n<|im_start|>assistant\n")  # chat_template.json, add_generation_prompt=True
    text = re.sub(r"<image-(\d+)>", lambda m: f"<image {m.group(1)}><img>{'<IMG_CONTEXT>' * TOKENS_PER_IMAGE}</img>",
                  text)  # Eagle2_5_VLProcessor.replace_media_placeholder (one tile per image)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint / "eagle2_hg_model"), local_files_only=True,
                                              trust_remote_code=False)
    tokenizer.padding_side = "left"  # transforms.py build_eagle_processor
    enc = tokenizer([text], padding=True, return_tensors="pt")  # collate -> eagle_processor(text=..., padding=True)
    # -- state: state_action.py StateActionToTensor + Normalizer.forward("min_max") per key --
    parts = []
    for key in ("single_arm", "gripper"):  # ConcatTransform.state_concat_order
        s = torch.from_numpy(observation["state"][key])[None]  # (T=1, dim) float64
        lo = torch.tensor(meta["statistics"]["state"][key]["min"], dtype=s.dtype)
        hi = torch.tensor(meta["statistics"]["state"][key]["max"], dtype=s.dtype)
        keep = lo != hi
        n = torch.zeros_like(s)
        n[..., keep] = (s[..., keep] - lo[keep]) / (hi[keep] - lo[keep])
        n[..., keep] = 2 * n[..., keep] - 1
        n[..., ~keep] = 0  # min == max -> 0
        parts.append(n)
    state = torch.cat(parts, dim=-1)  # ConcatTransform.apply
    state = np.pad(state.numpy(), ((0, 0), (0, MAX_STATE - state.shape[-1])))  # GR00TTransform._prepare_state
    state = torch.from_numpy(state).to(torch.float32)[None]  # (B, 1, 12): collate + GR00T_N1_5.prepare_input
    embodiment_id = torch.tensor([31])  # embodiment_tags.py EMBODIMENT_TAG_MAPPING["new_embodiment"]
    # -- model: gr00t_n1.py GR00T_N1_5.get_action --
    with torch.no_grad():
        features = vla.vlm_backbone(pixels[None, None], enc["input_ids"], torch.ones(1, 1, dtype=torch.bool),
                                    enc["attention_mask"].bool())  # EagleBackbone.forward_eagle
        head = vla.vla_head
        vl = head.vl_self_attention(head.vlln(features.features), None)  # process_backbone_output
        state_features = head.state_encoder(state, embodiment_id)  # get_action: state_encoder
        actions = noise[None].clone()  # torch.randn over (B, action_horizon, action_dim): all 8 dims
        steps = ACTION_HEAD_CFG["num_inference_timesteps"]
        for t in range(steps):  # get_action's Euler loop; padded dims never zeroed
            bucket = torch.full((1,), int(t / float(steps) * 1000), dtype=torch.long)
            v = head.velocity(actions, bucket, vl, None, state_features, embodiment_id)
            actions = actions + (1.0 / steps) * v
    action = actions.float()  # Gr00tPolicy._get_action_from_normalized_input
    # -- un-normalise: ConcatTransform.unapply + StateActionTransform.unapply (Normalizer.inverse) --
    out, start = [], 0
    for key, dim in (("single_arm", 3), ("gripper", 1)):  # action_concat_order, shapes from metadata
        a = action[..., start : start + dim]
        lo = torch.tensor(meta["statistics"]["action"][key]["min"]).to(a.dtype)
        hi = torch.tensor(meta["statistics"]["action"][key]["max"]).to(a.dtype)
        out.append(((a + 1) / 2 * (hi - lo) + lo).numpy()[0])
        start += dim
    return np.concatenate(out, axis=-1)


def test_policy_acts_like_the_reference_pipeline(checkpoint):
    from vla_core.engine.policy import Policy

    policy = Policy.from_pretrained(checkpoint, precision="fp32")
    processor = policy.processor
    assert type(processor).__name__ == "GR00TProcessor"
    assert processor.embodiment_id == 31 and processor.action_dim == 4
    assert policy.vla.vla_head.vl_self_attention is not None
    noise = torch.randn(HORIZON, MAX_ACTION, generator=torch.Generator().manual_seed(5))
    observation = raw_observation()

    ours = policy.act(observation, noise=noise)
    expected = reference_actions(checkpoint, policy.vla, observation, noise)
    assert ours.shape == (HORIZON, 4) and ours.dtype == np.float32
    assert np.abs(expected).max() > 0.1  # a non-trivial chunk
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    # the robot's action keys, as Gr00tPolicy returns them
    split = processor.split_actions(ours)
    assert list(split) == ["action.single_arm", "action.gripper"]
    np.testing.assert_array_equal(split["action.gripper"], ours[:, 3:])


def test_the_inputs_are_the_reference_inputs(checkpoint):
    """The intermediate values: prompt ids (left padding in a batch), pixels, state with the constant feature."""
    from vla_core.engine.policy import Policy

    policy = Policy.from_pretrained(checkpoint, precision="fp32")
    observation = raw_observation()
    short = {**observation, "task": "pick"}
    batch = policy.model_inputs([observation, short])
    tokenizer = policy.processor.tokenizer
    assert int((batch["lang_tokens"] == tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")).sum()) == 2 * TOKENS_PER_IMAGE
    assert not bool(batch["lang_masks"][1, 0]) and bool(batch["lang_masks"][1, -1])  # padded on the left
    assert batch["embodiment_id"].tolist() == [31, 31]
    # single_arm: 2 (x - min) / (max - min) - 1, no clip (2.5 -> 1.5); the constant feature -> 0
    np.testing.assert_allclose(batch["states"][0, :4].numpy(), [0.3, 1.5, 0.0, -0.5], atol=1e-6)
    assert torch.equal(batch["states"][0, 4:], torch.zeros(MAX_STATE - 4))


def test_converted_checkpoint_records_the_preset(checkpoint, tmp_path):
    """convert_gr00t_n15 writes a vla checkpoint whose config names GR00TProcessor; it reloads without the hook
    and acts identically."""
    from vla_eagle.gr00t_checkpoint import convert_gr00t_n15

    from vla_core.engine.policy import Policy

    target = convert_gr00t_n15(checkpoint, tmp_path / "converted")
    config = json.loads((target / "config.json").read_text())
    assert config["format"] == "vla" and config["model"]["processor"]["type"] == "GR00TProcessor"
    noise = torch.randn(HORIZON, MAX_ACTION, generator=torch.Generator().manual_seed(6))
    original = Policy.from_pretrained(checkpoint, precision="fp32").act(raw_observation(), noise=noise)
    converted = Policy.from_pretrained(target, precision="fp32")
    assert type(converted.processor).__name__ == "GR00TProcessor"
    np.testing.assert_allclose(converted.act(raw_observation(), noise=noise), original, atol=1e-6, rtol=0)


def test_missing_eagle_directory_is_a_clear_error(checkpoint, tmp_path):
    import shutil

    from vla_core.errors import CheckpointError
    from vla_core.models import load_pretrained

    copy = tmp_path / "no-eagle"
    shutil.copytree(checkpoint, copy)
    shutil.rmtree(copy / "eagle2_hg_model")
    with pytest.raises(CheckpointError, match="eagle2_hg_model"):
        load_pretrained(copy)
