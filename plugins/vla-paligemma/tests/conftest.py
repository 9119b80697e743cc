"""Tiny random models and inputs shared by the vla-paligemma tests.

Everything is built at toy size with random weights (nothing is downloaded): a SigLIP
with 16 patches, 2-layer Gemmas, a 4-step action chunk. Norm weights are randomised too
(transformers initialises them to zero), so a test fails if any weight is misplaced.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

VOCAB = 300
IMAGE_TOKEN = VOCAB
TEXT_CONFIG = {
    "model_type": "gemma", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": VOCAB,
}
VISION_CONFIG = {
    "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "vision_use_head": False,
}
VLM_CONFIG = {"text_config": TEXT_CONFIG, "vision_config": VISION_CONFIG, "projection_dim": 64,
              "image_token_id": IMAGE_TOKEN}
DIT_CONFIG = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 1, "head_dim": 16}
TOKENS_PER_IMAGE = 16
CHUNK, STATE_DIM, ACTION_DIM = 4, 6, 5


@torch.no_grad()
def perturb_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Move every parameter off its initial value (norms by a lot), deterministically."""
    g = torch.Generator().manual_seed(seed)
    for name, param in module.named_parameters():
        scale = 0.3 if "norm" in name else 0.05
        param.add_(torch.randn(param.shape, generator=g) * scale)
    return module


@pytest.fixture(scope="session")
def perturb() -> Callable[..., nn.Module]:
    return perturb_


@pytest.fixture(scope="session")
def tiny() -> dict[str, Any]:
    """The toy sizes: text/vision/VLM/expert configs and vocab, chunk, state and action widths."""
    return {"text_config": TEXT_CONFIG, "vision_config": VISION_CONFIG, "vlm_config": VLM_CONFIG,
            "dit_config": DIT_CONFIG, "vocab": VOCAB, "image_token": IMAGE_TOKEN, "chunk": CHUNK,
            "state_dim": STATE_DIM, "action_dim": ACTION_DIM, "tokens_per_image": TOKENS_PER_IMAGE}


@pytest.fixture(scope="session")
def pi0_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A random transformers PI0ForConditionalGeneration at toy size and the directory it was saved to."""
    from transformers import PI0Config, PI0ForConditionalGeneration

    torch.manual_seed(0)
    config = PI0Config(vlm_config=copy.deepcopy(VLM_CONFIG), dit_config=dict(DIT_CONFIG), chunk_size=CHUNK,
                       max_state_dim=STATE_DIM, max_action_dim=ACTION_DIM)
    model = perturb_(PI0ForConditionalGeneration(config).eval())
    directory = tmp_path_factory.mktemp("pi0_reference")
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture
def tiny_vla_spec() -> Callable[..., dict[str, Any]]:
    """spec(vla_type, **overrides): a tiny PI0FlowMatching / PI05FlowMatching spec."""

    def spec(vla_type: str = "PI0FlowMatching", **overrides: Any) -> dict[str, Any]:
        expert = {"type": "GemmaLLMBackbone", **DIT_CONFIG}
        if vla_type == "PI05FlowMatching":
            expert["adarms_cond_dim"] = DIT_CONFIG["hidden_size"]
        return {
            "type": vla_type,
            "vlm_backbone": {"type": "PaliGemma", "vlm_backbone_id": None, "vlm_config": copy.deepcopy(VLM_CONFIG)},
            "llm_expert": expert,
            "proj_width": DIT_CONFIG["hidden_size"],
            "n_action_steps": CHUNK,
            "max_state_dim": STATE_DIM,
            "max_action_dim": ACTION_DIM,
            **overrides,
        }

    return spec


@pytest.fixture
def pi0_inputs() -> dict[str, torch.Tensor]:
    """A batch of 2 with 2 cameras (the second row's second camera missing) and padded text,
    plus fixed noise, time and targets."""
    g = torch.Generator().manual_seed(1)
    batch, cams, length = 2, 2, 7
    img_masks = torch.ones(batch, cams, dtype=torch.bool)
    img_masks[1, 1] = False
    lang_masks = torch.ones(batch, length, dtype=torch.bool)
    lang_masks[1, -3:] = False
    return {
        "images": torch.rand(batch, cams, 3, 32, 32, generator=g) * 2 - 1,
        "img_masks": img_masks,
        "lang_tokens": torch.randint(1, VOCAB, (batch, length), generator=g),
        "lang_masks": lang_masks,
        "states": torch.rand(batch, STATE_DIM, generator=g) * 2 - 1,
        "actions": torch.randn(batch, CHUNK, ACTION_DIM, generator=g),
        "noise": torch.randn(batch, CHUNK, ACTION_DIM, generator=g),
        "timestep": torch.tensor([0.25, 0.8]),
    }


@pytest.fixture
def reference_inputs() -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Our batch -> transformers PI0 inputs: image placeholder tokens before the text, and
    attention_mask zero on a missing camera's tokens (its features are never attended)."""

    def convert(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch, cams = inputs["img_masks"].shape
        image_ids = torch.full((batch, cams * TOKENS_PER_IMAGE), IMAGE_TOKEN)
        image_mask = inputs["img_masks"].repeat_interleave(TOKENS_PER_IMAGE, dim=1)
        return {
            "state": inputs["states"],
            "input_ids": torch.cat([image_ids, inputs["lang_tokens"]], dim=1),
            "attention_mask": torch.cat([image_mask, inputs["lang_masks"]], dim=1).long(),
            "pixel_values": inputs["images"],
            "pixel_attention_mask": inputs["img_masks"],
            "noise": inputs["noise"],
        }

    return convert


TOKENIZER_SENTENCES = [
    "Task: pick up the red cube, State: 12 200 -1 255 0 128 7 64;\nAction: ",
    "put the bowl on the plate", "open the top drawer and put the bowl inside",
    "Task: push the button, State: 3 45 67 89 101 -1 33 250;\nAction: ", "stack the blocks",
] * 4


@pytest.fixture(scope="session")
def spm_tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SentencePiece BPE model trained here on a few prompts (pad 0, eos 1, bos 2, unk 3, as PaliGemma's;
    identity normalisation, no dummy prefix, digits split, byte fallback), saved as paligemma_tokenizer.model."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_SENTENCES), model_writer=model, vocab_size=300, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        hard_vocab_limit=False, minloglevel=2,
    )
    path = tmp_path_factory.mktemp("tokenizer") / "paligemma_tokenizer.model"
    path.write_bytes(model.getvalue())
    return path
