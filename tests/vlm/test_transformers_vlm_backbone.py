"""TransformersVLMBackbone on tiny random Qwen2.5-VL, Qwen3-VL, SmolVLM (Idefics3) and Gemma 3 models.

Per family: the features equal the transformers model's own hidden states for the inputs
its own processor and chat template make (<= 1e-5); composed with FlowMatchingHead and
with MLPActionHead it trains 2 steps, saves, and a fresh process reloads and predicts
the same actions after the model directory is deleted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny_vlms
import torch

from vla_core.errors import ConfigError
from vla_core.models.build import build_component, build_vla

TASK = "pick up the red block"
SIZES = {"qwen2_5_vl": [56, 56], "qwen3_vl": [56, 56], "gemma3": None, "smolvlm": None}
HEADS = {
    "FlowMatchingHead": {"type": "FlowMatchingHead", "backbone_embedding_dim": 32, "state_dim": 4, "action_dim": 3,
                         "traj_length": 4, "hidden_size": 32, "input_embedding_dim": 32, "num_layers": 1,
                         "num_heads": 2, "vl_self_attention_layers": 1, "vl_self_attention_heads": 2,
                         "num_target_vision_tokens": 2, "max_num_embodiments": 1, "max_seq_len": 8,
                         "num_inference_timesteps": 2},
    "MLPActionHead": {"type": "MLPActionHead", "input_dim": 32, "action_dim": 3, "chunk_size": 4, "state_dim": 4,
                      "hidden_dim": 32},
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vlms")
    return {family: tiny_vlms.build(family, root / family) for family in tiny_vlms.FAMILIES}


def backbone_spec(family: str, directory: Path) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "TransformersVLMBackbone", "pretrained_name_or_path": str(directory),
                            "select_layer": 1, "max_cameras": 2}
    if SIZES[family]:
        spec["image_size"] = SIZES[family]
    return spec


def uint8_images(size: tuple[int, int], count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def normalise(images: list[np.ndarray], backbone: Any) -> torch.Tensor:
    """uint8 (H, W, 3) images -> (N, 3, H, W) scaled to [0, 1] and normalised as the VLA processor does."""
    mean = torch.tensor(backbone.image_mean).view(3, 1, 1)
    std = torch.tensor(backbone.image_std).view(3, 1, 1)
    return torch.stack([(torch.from_numpy(im).permute(2, 0, 1).float() / 255 - mean) / std for im in images])


@pytest.mark.parametrize("family", tiny_vlms.FAMILIES)
def test_features_equal_the_models_own_hidden_states(family: str, model_dirs: dict[str, Path]) -> None:
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    directory = model_dirs[family]
    backbone = build_component("vlm_backbones", backbone_spec(family, directory)).eval()
    processor = AutoProcessor.from_pretrained(directory)
    assert backbone.image_mean == pytest.approx(list(processor.image_processor.image_mean))
    images = uint8_images(backbone.image_size, 2)
    content = [{"type": "image", "image": Image.fromarray(im)} for im in images] + [{"type": "text", "text": TASK}]
    reference_inputs = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                     tokenize=True, return_dict=True, return_tensors="pt")
    reference = AutoModel.from_pretrained(directory).eval()
    tokens = processor.tokenizer(TASK, return_tensors="pt")["input_ids"]  # what the VLA processor's tokenizer gives
    # A second row with one camera masked and padding after a shorter instruction.
    lang = torch.cat([tokens, tokens], dim=0)
    lang_masks = torch.ones_like(lang, dtype=torch.bool)
    lang_masks[1, -2:] = False
    img_masks = torch.tensor([[True, True], [False, True]])
    batch_images = normalise(images, backbone)[None].expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        expected = reference(**reference_inputs, output_hidden_states=True).hidden_states[1]
        out = backbone(batch_images, lang, img_masks, lang_masks)
    assert out.features.shape[-1] == backbone.hidden_size == 32
    length = expected.shape[1]
    assert bool(out.mask[0, :length].all())
    torch.testing.assert_close(out.features[0, :length], expected[0], atol=1e-5, rtol=0)
    # Row 2 holds one image and a shorter instruction: fewer valid positions than row 1.
    assert int(out.mask[1].sum()) < int(out.mask[0].sum())


def test_checks_give_the_fix(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multiples of 28"):
        spec = {**backbone_spec("qwen2_5_vl", model_dirs["qwen2_5_vl"]), "image_size": [50, 50]}
        build_component("vlm_backbones", spec)
    with pytest.raises(ConfigError, match="not a local directory"):
        spec = {"type": "TransformersVLMBackbone", "pretrained_name_or_path": str(tmp_path / "missing")}
        build_component("vlm_backbones", spec)
    with pytest.raises(ConfigError, match="decoder layers"):
        build_component("vlm_backbones", {**backbone_spec("gemma3", model_dirs["gemma3"]), "select_layer": 7})


def _batch(backbone_images: torch.Tensor, vocab_ids: list[int]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lang = torch.tensor([vocab_ids, vocab_ids])
    masks = torch.ones_like(lang, dtype=torch.bool)
    masks[1, -1] = False
    action_masks = torch.ones(2, 4, dtype=torch.bool)
    action_masks[1, -1] = False
    return {"images": backbone_images, "img_masks": torch.ones(2, 1, dtype=torch.bool), "lang_tokens": lang,
            "lang_masks": masks, "states": torch.randn(2, 4, generator=g), "actions": torch.randn(2, 4, 3, generator=g),
            "action_masks": action_masks}


RELOAD = """
import json, sys, torch
from vla_core.models.pretrained import load_pretrained
inputs = torch.load(sys.argv[1], weights_only=True)
out = {}
for name, checkpoint in json.loads(sys.argv[2]).items():
    vla = load_pretrained(checkpoint)
    out[name] = vla.predict_action(**inputs[name]).tolist()
print(json.dumps(out))
"""


def test_compose_train_save_reload_without_the_model_directory(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    expected: dict[str, torch.Tensor] = {}
    inputs: dict[str, dict[str, torch.Tensor]] = {}
    checkpoints: dict[str, str] = {}
    copies = {family: shutil.copytree(model_dirs[family], tmp_path / "models" / family) for family in model_dirs}
    for family, directory in copies.items():
        ids = AutoTokenizer.from_pretrained(directory)(TASK)["input_ids"]
        for head_name, head in HEADS.items():
            vla = build_vla({"type": "LlavaVLA", "vlm_backbone": backbone_spec(family, directory), "vla_head": head})
            size = vla.vlm_backbone.image_size
            images = normalise(uint8_images(size, 2, seed=1), vla.vlm_backbone).unsqueeze(1)
            batch = _batch(images, ids)
            optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=1e-3)
            before = vla.vlm_backbone.model.get_input_embeddings().weight.detach().clone()
            for _ in range(2):
                loss = vla(**batch)["loss"]
                assert torch.isfinite(loss)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            assert not torch.equal(before, vla.vlm_backbone.model.get_input_embeddings().weight)  # the VLM trains
            name = f"{family}-{head_name}"
            checkpoints[name] = str(vla.save_pretrained(tmp_path / "ckpt" / name))
            observation = {k: batch[k] for k in ("images", "img_masks", "lang_tokens", "lang_masks", "states")}
            if head_name == "FlowMatchingHead":
                observation["noise"] = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(3))
            inputs[name] = observation
            expected[name] = vla.eval().predict_action(**observation)
    shutil.rmtree(tmp_path / "models")  # the checkpoints must stand alone
    saved = json.loads((Path(checkpoints["gemma3-MLPActionHead"]) / "config.json").read_text())
    assert saved["model"]["vlm_backbone"]["config"]["text_config"]["hidden_size"] == 32
    torch.save(inputs, tmp_path / "inputs.pt")
    result = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "inputs.pt"), json.dumps(checkpoints)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    predicted = json.loads(result.stdout.strip().splitlines()[-1])
    for name, actions in expected.items():
        torch.testing.assert_close(torch.tensor(predicted[name]), actions, atol=1e-5, rtol=0, msg=name)


def test_training_refuses_a_processor_with_other_image_statistics(model_dirs: dict[str, Path]) -> None:
    from vla_core.data.processor import VLAProcessor
    from vla_core.engine.setup import check_image_preprocessing

    vla = build_vla({"type": "LlavaVLA", "vlm_backbone": backbone_spec("gemma3", model_dirs["gemma3"]),
                     "vla_head": HEADS["MLPActionHead"]})
    settings = vla.vlm_backbone.processor_settings()
    assert settings == {"image_size": [28, 28], "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    check_image_preprocessing(vla, VLAProcessor(**settings))
    with pytest.raises(ConfigError, match=r"model.processor.image_mean: .*set model.processor.image_mean"):
        check_image_preprocessing(vla, VLAProcessor(image_size=28, image_mean=[0.485, 0.456, 0.406], image_std=0.5))


def test_contract_checks_pass_for_the_transformers_backbones(model_dirs: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    from vla_core.testing import check_llm_backbone, check_projector, check_vision_backbone, check_vlm_backbone

    backbone = build_component("vlm_backbones", backbone_spec("gemma3", model_dirs["gemma3"]))
    ids = AutoTokenizer.from_pretrained(model_dirs["gemma3"])(TASK)["input_ids"]
    check_vlm_backbone(backbone, backbone.image_size, ids)
    spec = tiny_vla_spec_parts()
    check_vision_backbone(build_component("vision_backbones", spec["vision_backbone"]), (32, 32))
    check_llm_backbone(build_component("llm_backbones", spec["llm_backbone"]), vocab_size=64)
    check_projector(build_component("projectors", spec["projector"]))


def tiny_vla_spec_parts() -> dict[str, Any]:
    from vla_core.testing import tiny_vla_spec

    return tiny_vla_spec()
