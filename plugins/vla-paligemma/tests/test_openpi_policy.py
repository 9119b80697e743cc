"""A released openpi pi0 / pi0.5 directory -> `Policy.act(raw observation)` in robot units, as openpi computes it.

Each test writes a tiny random checkpoint in the layout openpi's converter writes
(`examples/convert_jax_model_to_pytorch.py`: model.safetensors with PI0Pytorch's names, config.json
with the Gemma variants, assets/<asset_id>/norm_stats.json) plus a SentencePiece tokenizer trained
here (conftest `spm_tokenizer_file`), beside it. The expected actions are computed step by step
from openpi's pipeline, written out in the test with numpy / PIL / sentencepiece (not with the
processor under test); only the network itself is ours (its math is compared with
transformers' PI0 in test_transformers_pi0.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentencepiece
import torch
from PIL import Image
from safetensors.torch import save_file
from vla_paligemma.openpi_images import IMAGE_KEYS
from vla_paligemma.openpi_processor import OpenPIProcessor
from vla_paligemma.transformers_pi0 import openpi_name_mapping

import vla_core
from vla_core.engine.export import export_checkpoint
from vla_core.engine.policy import Policy
from vla_core.errors import CheckpointError
from vla_core.serving.checks import ObservationSpec

VOCAB, WIDTH, HORIZON, MODEL_ACTION_DIM = 320, 64, 4, 8
STATE_DIM, ACTION_DIM = 5, 4
# openpi's "dummy" Gemma variant (gemma.get_config): width 64, depth 4, mlp 128, 8 heads, 1 kv head, head_dim 16.
DUMMY = {"hidden_size": 64, "num_hidden_layers": 4, "intermediate_size": 128, "num_attention_heads": 8,
         "num_key_value_heads": 1, "head_dim": 16}
# A small SigLIP at openpi's 224 resolution (16 patches): released checkpoints have So400m/14 here.
VISION = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "image_size": 224, "patch_size": 56, "vision_use_head": False}
def to_openpi_names(state: dict[str, torch.Tensor], pi05: bool) -> dict[str, torch.Tensor]:
    """Our state dict -> PI0Pytorch's keys, with the tied VLM embedding under `paligemma.lm_head` and an
    (unused) expert LM head, as openpi's converter saves them."""
    inverse = sorted(openpi_name_mapping(pi05=pi05).items(), key=lambda item: len(item[0]), reverse=True)
    out = {}
    for key, tensor in state.items():
        ours, theirs = next((o, t) for o, t in inverse if key == o or key.startswith(o + "."))
        out[theirs + key[len(ours):]] = tensor.contiguous()
    out["paligemma_with_expert.paligemma.lm_head.weight"] = out.pop(
        "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight")
    out["paligemma_with_expert.gemma_expert.lm_head.weight"] = torch.randn(VOCAB, WIDTH)
    return out


def write_openpi_checkpoint(directory: Path, pi05: bool, perturb: Any, tokenizer: Path) -> dict[str, Any]:
    """A random tiny pi0 / pi0.5 in openpi's converted layout -> the norm stats it ships."""
    torch.manual_seed(0)
    model = vla_core.build_vla({
        "type": "PI05FlowMatching" if pi05 else "PI0FlowMatching",
        "vlm_backbone": {"type": "PaliGemma", "vlm_backbone_id": None, "vlm_config": {
            "text_config": {"model_type": "gemma", "vocab_size": VOCAB, **DUMMY}, "vision_config": VISION,
            "projection_dim": WIDTH, "image_token_id": VOCAB}},
        "llm_expert": {"type": "GemmaLLMBackbone", **DUMMY, "vocab_size": 0,
                       **({"adarms_cond_dim": WIDTH} if pi05 else {})},
        "proj_width": WIDTH, "n_action_steps": HORIZON, "max_state_dim": MODEL_ACTION_DIM,
        "max_action_dim": MODEL_ACTION_DIM,
    })
    perturb(model, seed=4)
    save_file(to_openpi_names(model.state_dict(), pi05), str(directory / "model.safetensors"))
    config = {"action_dim": MODEL_ACTION_DIM, "action_horizon": HORIZON, "paligemma_variant": "dummy",
              "action_expert_variant": "dummy", "precision": "float32", "vision_config": VISION}
    (directory / "config.json").write_text(json.dumps(config))
    g = np.random.default_rng(1)
    stats = {
        key: {"mean": g.normal(0, 1, dim).tolist(), "std": g.uniform(0.2, 2, dim).tolist(),
              "q01": (-1 - g.uniform(0, 1, dim)).tolist(), "q99": (1 + g.uniform(0, 1, dim)).tolist()}
        for key, dim in (("state", STATE_DIM), ("actions", ACTION_DIM))
    }
    (directory / "assets" / "libero").mkdir(parents=True)
    (directory / "assets" / "libero" / "norm_stats.json").write_text(json.dumps({"norm_stats": stats}))
    shutil.copy(tokenizer, directory / "paligemma_tokenizer.model")  # openpi downloads it; here it sits beside
    return {key: {k: np.asarray(v) for k, v in value.items()} for key, value in stats.items()}


def observation(stats: dict[str, Any]) -> dict[str, Any]:
    """Two cameras at 48 x 64 (no right wrist), a task with "_" and a newline, a state partly below q01."""
    g = np.random.default_rng(2)
    low, high = stats["state"]["q01"], stats["state"]["q99"]
    state = low + g.uniform(0, 1, len(low)) * (high - low)
    state[1] = stats["state"]["q01"][1] - 0.5  # normalises below -1: pi0.5 writes bin "-1"
    return {
        "images": {"base_0_rgb": g.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                   "left_wrist_0_rgb": g.integers(0, 256, (48, 64, 3), dtype=np.uint8)},
        "task": "  pick_up the red cube\n",
        "state": state,
    }


def reference_inputs(
    obs: dict[str, Any], stats: dict[str, Any], tokenizer: Path, pi05: bool, size: int = 224,
    model_dim: int = MODEL_ACTION_DIM,
) -> dict[str, Any]:
    """openpi's input transforms, one reference step per line, on one observation (batch of 1); `size` is
    openpi's 224 (a smaller test model's image size otherwise), `model_dim` the model's action_dim."""
    base, wrist = obs["images"]["base_0_rgb"], obs["images"]["left_wrist_0_rgb"]
    # policies/libero_policy.py LiberoInputs: slots base / left wrist / right wrist = zeros_like(base), mask False.
    images = {"base_0_rgb": base, "left_wrist_0_rgb": wrist, "right_wrist_0_rgb": np.zeros_like(base)}
    masks = [True, True, False]
    state = np.asarray(obs["state"], dtype=np.float64)
    s = stats["state"]
    if pi05:  # transforms.py Normalize._normalize_quantile (use_quantile_norm for pi0.5)
        state = (state - s["q01"]) / (s["q99"] - s["q01"] + 1e-6) * 2.0 - 1.0
    else:  # transforms.py Normalize._normalize (z-score for pi0)
        state = (state - s["mean"]) / (s["std"] + 1e-6)
    resized = {}
    # transforms.py ResizeImages -> openpi_client/image_tools.py resize_with_pad (PIL bilinear, pasted on black).
    for key, image in images.items():
        pil = Image.fromarray(image)
        ratio = max(pil.size[0] / size, pil.size[1] / size)
        small = pil.resize((int(pil.size[0] / ratio), int(pil.size[1] / ratio)), resample=Image.BILINEAR)
        canvas = Image.new(small.mode, (size, size), 0)
        canvas.paste(small, (int((size - small.size[0]) / 2), int((size - small.size[1]) / 2)))
        resized[key] = np.asarray(canvas)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer))
    # models/tokenizer.py PaligemmaTokenizer.tokenize: the task cleaned (strip, "_" and "\n" -> " ").
    cleaned = obs["task"].strip().replace("_", " ").replace("\n", " ")
    if pi05:  # models/tokenizer.py: the pi0.5 prompt with np.digitize bins
        bins = np.digitize(state, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
        tokens = sp.encode(f"Task: {cleaned}, State: {' '.join(map(str, bins))};\nAction: ", add_bos=True)
    else:  # models/tokenizer.py: the pi0 prompt, "\n" encoded separately
        tokens = sp.encode(cleaned, add_bos=True) + sp.encode("\n")
    max_len = 200 if pi05 else 48  # models/pi0_config.py Pi0Config.max_token_len
    mask = [True] * len(tokens) + [False] * (max_len - len(tokens))
    tokens = tokens + [0] * (max_len - len(tokens))
    state = np.pad(state, (0, model_dim - len(state)))  # transforms.py PadStatesAndActions
    # models/model.py Observation.from_dict: uint8 -> float32 / 255 * 2 - 1 (here channels first, in slot order).
    pixels = np.stack([(resized[k].astype(np.float32) / 255.0 * 2.0 - 1.0).transpose(2, 0, 1) for k in images])
    return {
        "images": torch.from_numpy(pixels)[None], "img_masks": torch.tensor([masks]),
        "lang_tokens": torch.tensor([tokens]), "lang_masks": torch.tensor([mask]),
        "states": torch.from_numpy(state.astype(np.float32))[None],
    }


def reference_outputs(actions: np.ndarray, stats: dict[str, Any], pi05: bool) -> np.ndarray:
    """openpi's output transforms on the model's (T, model_action_dim) float32 actions."""
    a = stats["actions"]
    action_dim, model_dim = len(a["mean"]), actions.shape[-1]
    if pi05:  # transforms.py Unnormalize._unnormalize_quantile: stats' dims mapped back, the rest kept
        dim = a["q01"].shape[-1]
        out = np.concatenate([(actions[..., :dim] + 1.0) / 2.0 * (a["q99"] - a["q01"] + 1e-6) + a["q01"],
                              actions[..., dim:]], axis=-1)
    else:  # transforms.py Unnormalize._unnormalize: mean padded with 0, std with 1
        pad = model_dim - action_dim
        out = actions * (np.pad(a["std"], (0, pad), constant_values=1.0) + 1e-6) + np.pad(a["mean"], (0, pad))
    return out[..., :action_dim]  # policies/libero_policy.py LiberoOutputs: the robot's action dims


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_policy_on_an_openpi_checkpoint_follows_openpi(
    tmp_path: Path, perturb: Any, spm_tokenizer_file: Path, pi05: bool
) -> None:
    stats = write_openpi_checkpoint(tmp_path, pi05, perturb, spm_tokenizer_file)
    policy = Policy.from_pretrained(tmp_path, precision="fp32")
    assert type(policy.vla).__name__ == ("PI05FlowMatching" if pi05 else "PI0FlowMatching")
    assert policy.vla.load_report.ok and policy.vla.load_report.ignored == 1  # the expert's unused LM head
    assert isinstance(policy.processor, OpenPIProcessor) and policy.processor.use_quantiles == pi05
    spec = ObservationSpec.from_policy(policy)  # what `vla serve` checks requests against
    assert spec.cameras == list(IMAGE_KEYS) and spec.noise_shape == (HORIZON, MODEL_ACTION_DIM)
    assert spec.state_dim == STATE_DIM
    obs = observation(stats)
    expected_inputs = reference_inputs(obs, stats, tmp_path / "paligemma_tokenizer.model", pi05)

    # Each input as openpi builds it.
    got = policy.model_inputs([obs])
    for key, value in expected_inputs.items():
        assert torch.equal(got[key], value), key
    if pi05:
        text = policy.processor.tokenizer.processor.decode(got["lang_tokens"][0][got["lang_masks"][0]].tolist())
        assert text.startswith("Task: pick up the red cube, State: ") and text.endswith(";\nAction: ")
        assert " -1 " in text  # the state dim below q01

    # The actions: PI0Pytorch.sample_actions on those inputs (10 steps), then the output transforms.
    noise = torch.randn(HORIZON, MODEL_ACTION_DIM, generator=torch.Generator().manual_seed(3))
    model_actions = policy.vla.predict_action(**expected_inputs, noise=noise[None])[0].numpy()
    expected = reference_outputs(model_actions, stats, pi05)
    actions = policy.act(obs, noise=noise)
    assert actions.shape == (HORIZON, ACTION_DIM) and np.abs(expected).max() > 0.1
    np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-6)

    # Exported to our format, the checkpoint records `processor: {type: OpenPIProcessor}` and acts the same.
    exported = export_checkpoint(tmp_path, tmp_path.parent / f"{tmp_path.name}-ours")
    config = json.loads((exported / "config.json").read_text())
    assert config["model"]["processor"]["type"] == "OpenPIProcessor"
    again = Policy.from_pretrained(exported, precision="fp32")
    assert isinstance(again.processor, OpenPIProcessor)
    np.testing.assert_array_equal(again.act(obs, noise=noise), actions)


def test_without_tokenizer_the_model_loads_but_has_no_processor(
    tmp_path: Path, perturb: Any, spm_tokenizer_file: Path
) -> None:
    write_openpi_checkpoint(tmp_path, False, perturb, spm_tokenizer_file)
    (tmp_path / "paligemma_tokenizer.model").unlink()
    vla = vla_core.load_pretrained(tmp_path)
    assert vla.processor is None and vla.load_report.ok
    with pytest.raises(CheckpointError, match="holds no processor"):
        Policy.from_pretrained(tmp_path)


def test_policy_on_a_transformers_pi0_directory_follows_openpi(
    pi0_reference: tuple[Any, Path], tiny: dict, tmp_path: Path, spm_tokenizer_file: Path
) -> None:
    """transformers' PI0 `save_pretrained` directory + openpi's norm stats and tokenizer beside it: our Policy equals
    openpi's input/output transforms around transformers' own `sample_actions`."""
    model, directory = pi0_reference
    for file in directory.iterdir():
        shutil.copy(file, tmp_path / file.name)
    shutil.copy(spm_tokenizer_file, tmp_path / "tokenizer.model")
    g = np.random.default_rng(5)
    stats = {key: {"mean": g.normal(0, 1, dim), "std": g.uniform(0.2, 2, dim), "q01": -1 - g.uniform(0, 1, dim),
                   "q99": 1 + g.uniform(0, 1, dim)} for key, dim in (("state", 4), ("actions", 3))}
    (tmp_path / "assets" / "robot").mkdir(parents=True)
    (tmp_path / "assets" / "robot" / "norm_stats.json").write_text(
        json.dumps({"norm_stats": {k: {n: v.tolist() for n, v in value.items()} for k, value in stats.items()}}))
    policy = Policy.from_pretrained(tmp_path, precision="fp32")
    assert isinstance(policy.processor, OpenPIProcessor) and policy.processor.image_size == (32, 32)
    obs = observation(stats)
    size, max_action_dim = tiny["vision_config"]["image_size"], tiny["action_dim"]
    inputs = reference_inputs(obs, stats, spm_tokenizer_file, False, size=size, model_dim=max_action_dim)
    got = policy.model_inputs([obs])
    for key, value in inputs.items():
        assert torch.equal(got[key], value), key

    # transformers' PI0ForConditionalGeneration.sample_actions on those inputs: image placeholders before the prompt.
    image_ids = torch.full((1, 3 * tiny["tokens_per_image"]), tiny["image_token"])
    image_mask = inputs["img_masks"].repeat_interleave(tiny["tokens_per_image"], dim=1)
    noise = torch.randn(tiny["chunk"], max_action_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model_actions = model.sample_actions(
            state=torch.nn.functional.pad(inputs["states"], (0, tiny["state_dim"] - max_action_dim)),
            input_ids=torch.cat([image_ids, inputs["lang_tokens"]], dim=1),
            attention_mask=torch.cat([image_mask, inputs["lang_masks"]], dim=1).long(),
            pixel_values=inputs["images"], pixel_attention_mask=inputs["img_masks"], noise=noise[None], num_steps=10,
        )[0].numpy()
    expected = reference_outputs(model_actions, stats, False)
    actions = policy.act(obs, noise=noise)
    assert actions.shape == (tiny["chunk"], 3) and np.abs(expected).max() > 0.1
    # transformers' float32 time embedding and decimal step times vs openpi's (our default): 4.4e-6 here.
    np.testing.assert_allclose(actions, expected, rtol=0, atol=2e-5)
