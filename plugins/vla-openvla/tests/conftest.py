"""Tiny OpenVLA / OpenVLA-OFT specs and reference computations shared by the tests (the `ref` fixture).

The references follow the reference code (openvla/openvla `modeling_prismatic.py`,
moojink/openvla-oft `modeling_prismatic.py` / `action_heads.py`) on top of independently
built timm and transformers models: nothing of vla_openvla is used to compute them
except the weights, copied by name.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
import torch

IMAGE_SIZE = 28
TIMM_IDS = ["vit_large_patch14_reg4_dinov2", "vit_so400m_patch14_siglip_224"]
# patch 7 on 28 px -> 4x4 = 16 patches; depth 3 so the second-to-last block is not the first.
TIMM_OVERRIDES = [
    {"embed_dim": 32, "depth": 3, "num_heads": 2, "patch_size": 7},
    {"embed_dim": 24, "depth": 3, "num_heads": 2, "patch_size": 7},
]
VISION_DIM = 56
TEXT_CONFIG = {
    "vocab_size": 384,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
TOKENIZER_VOCAB = 320  # 384 - pad_to_multiple_of 64


def vision_spec(**overrides: Any) -> dict[str, Any]:
    spec = {"type": "PrismaticVisionBackbone", "timm_model_ids": TIMM_IDS, "image_sizes": [IMAGE_SIZE, IMAGE_SIZE],
            "timm_overrides": copy.deepcopy(TIMM_OVERRIDES)}
    return {**spec, **overrides}


def openvla_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "type": "OpenVLA",
        "vision_backbone": vision_spec(),
        "projector": {"type": "PrismaticProjector", "in_dim": VISION_DIM, "out_dim": 64},
        "text_config": dict(TEXT_CONFIG),
        "action_dim": 4,
    }
    return {**spec, **overrides}


def oft_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "type": "OpenVLAOFT",
        "vision_backbone": vision_spec(),
        "projector": {"type": "PrismaticProjector", "in_dim": VISION_DIM, "out_dim": 64},
        "proprio_projector": {"type": "PrismaticProjector", "in_dim": 5, "out_dim": 64, "arch": "gelu-mlp"},
        "text_config": dict(TEXT_CONFIG),
        "vla_head": {"type": "L1RegressionActionHead", "input_dim": 64, "hidden_dim": 48, "action_dim": 3,
                     "chunk_size": 2},
        "action_dim": 3,
        "chunk_size": 2,
    }
    return {**spec, **overrides}


def prompt_batch(lengths: list[int], seed: int = 0, n_cam: int = 1, state_dim: int = 6) -> dict[str, torch.Tensor]:
    """Right-padded prompts of the given lengths (BOS = 1 first), images, states."""
    g = torch.Generator().manual_seed(seed)
    batch, width = len(lengths), max(lengths)
    tokens = torch.randint(3, TOKENIZER_VOCAB - 256, (batch, width), generator=g)
    tokens[:, 0] = 1
    masks = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    tokens = tokens.masked_fill(~masks, 0)
    return {
        "images": torch.randn(batch, n_cam, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g),
        "img_masks": torch.ones(batch, n_cam, dtype=torch.bool),
        "lang_tokens": tokens,
        "lang_masks": masks,
        "states": torch.randn(batch, state_dim, generator=g),
    }


# ---- independent reference modules ------------------------------------------------------------
def reference_featurizers(vla_state: dict[str, torch.Tensor], prefix: str = "vision_backbone.") -> list[Any]:
    """timm ViTs built as in modeling_prismatic (num_classes=0, img_size), weights copied from
    our `featurizer` / `fused_featurizer` with `scale_factor` renamed back to timm's `gamma`."""
    import timm

    vits = []
    for name, model_id, overrides in zip(("featurizer", "fused_featurizer"), TIMM_IDS, TIMM_OVERRIDES, strict=True):
        vit = timm.create_model(model_id, pretrained=False, num_classes=0, img_size=IMAGE_SIZE, act_layer=None,
                                **overrides)
        start = f"{prefix}{name}."
        state = {k[len(start):].replace(".scale_factor", ".gamma"): v for k, v in vla_state.items()
                 if k.startswith(start)}
        vit.load_state_dict(state, strict=True)
        vits.append(vit.eval())
    return vits


def reference_patches(vits: list[Any], images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) or channel-stacked (B, 6, H, W) (split [3, 3] as in PrismaticVisionBackbone.forward)
    -> timm `get_intermediate_layers(n={depth - 2})` of each ViT, concatenated on channels."""
    views = torch.split(images, [3, 3], dim=1) if images.shape[1] == 6 else [images] * len(vits)
    outs = [vit.get_intermediate_layers(x, n={len(vit.blocks) - 2})[0] for vit, x in zip(vits, views, strict=True)]
    return torch.cat(outs, dim=2)


def reference_projector(state: dict[str, torch.Tensor], x: torch.Tensor, prefix: str = "projector.") -> torch.Tensor:
    """modeling_prismatic's fused PrismaticProjector: fc1 -> GELU -> fc2 -> GELU -> fc3."""
    f = torch.nn.functional
    x = f.gelu(f.linear(x, state[prefix + "fc1.weight"], state[prefix + "fc1.bias"]))
    x = f.linear(x, state[prefix + "fc2.weight"], state[prefix + "fc2.bias"])
    if prefix + "fc3.weight" in state:
        x = f.linear(f.gelu(x), state[prefix + "fc3.weight"], state[prefix + "fc3.bias"])
    return x


def reference_llama(vla_state: dict[str, torch.Tensor], attn_implementation: str = "sdpa") -> Any:
    """transformers' LlamaForCausalLM with OpenVLA's text config, weights from `language_model.*`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**TEXT_CONFIG, rms_norm_eps=1e-6, tie_word_embeddings=False)
    config._attn_implementation = attn_implementation
    model = LlamaForCausalLM(config)
    start = "language_model."
    model.load_state_dict({k[len(start):]: v for k, v in vla_state.items() if k.startswith(start)}, strict=True)
    return model.eval()


def reference_encode(actions: torch.Tensor, vocab_size: int = TOKENIZER_VOCAB) -> torch.Tensor:
    """OpenVLA's ActionTokenizer: vocab_size - digitize(clip(a, -1, 1), linspace(-1, 1, 256))."""
    import numpy as np

    bins = np.linspace(-1, 1, 256)
    return torch.from_numpy(vocab_size - np.digitize(np.clip(actions.double().numpy(), -1.0, 1.0), bins)).long()


def reference_decode(token_ids: torch.Tensor, vocab_size: int = TOKENIZER_VOCAB) -> torch.Tensor:
    """OpenVLA's bin-centre de-tokenisation."""
    import numpy as np

    bins = np.linspace(-1, 1, 256)
    centers = (bins[:-1] + bins[1:]) / 2.0
    return torch.from_numpy(centers[np.clip(vocab_size - token_ids.numpy() - 1, 0, 254)]).float()


def reference_multimodal_embeds(
    vla_state: dict[str, torch.Tensor], llm: Any, images: torch.Tensor, input_ids: torch.Tensor,
    extra_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """modeling_prismatic's multimodal forward up to the LLM: patches -> projector, inserted after
    <BOS> (input_ids[:, :1]); `extra_tokens` (B, K, D) follow the patches (OFT's proprio token).
    images (B, 3, H, W), input_ids (B, L) unpadded -> (B, 1 + P [+ K] + L - 1, D)."""
    with torch.no_grad():
        patches = reference_projector(vla_state, reference_patches(reference_featurizers(vla_state), images))
        embeds = llm.get_input_embeddings()(input_ids)
        inserted = patches if extra_tokens is None else torch.cat([patches, extra_tokens], dim=1)
        return torch.cat([embeds[:, :1], inserted, embeds[:, 1:]], dim=1)


def reference_l1_head(state: dict[str, torch.Tensor], hidden: torch.Tensor, chunk_size: int,
                      prefix: str = "vla_head.model.") -> torch.Tensor:
    """OFT's L1RegressionActionHead.predict_action: (B, T*A, D) -> reshape (B, T, A*D) -> MLPResNet."""
    f = torch.nn.functional

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        return f.layer_norm(x, (x.shape[-1],), state[prefix + name + ".weight"], state[prefix + name + ".bias"])

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return f.linear(x, state[prefix + name + ".weight"], state[prefix + name + ".bias"])

    x = hidden.reshape(hidden.shape[0], chunk_size, -1)
    x = f.relu(linear(norm(x, "layer_norm1"), "fc1"))
    block = 0
    while f"{prefix}mlp_resnet_blocks.{block}.ffn.0.weight" in state:
        x = x + f.relu(linear(norm(x, f"mlp_resnet_blocks.{block}.ffn.0"), f"mlp_resnet_blocks.{block}.ffn.1"))
        block += 1
    return linear(norm(x, "layer_norm2"), "fc2")


def reference_oft_action_hidden(
    vla_state: dict[str, torch.Tensor], images: torch.Tensor, input_ids: torch.Tensor, state: torch.Tensor,
    num_action_tokens: int, proprio_dim: int,
) -> torch.Tensor:
    """OFT's predict_action for one unpadded prompt: append placeholders + </s>, zero the action
    embeddings, insert [patches of each camera, proprio token] after <BOS>, run LLaMA with
    `is_causal=False` and no mask (the patched SDPA), slice the hidden states at
    [NUM_PATCHES + NUM_PROMPT_TOKENS : + num_action_tokens]. images (1, N_cam, 3, H, W)."""
    f = torch.nn.functional
    llm = reference_llama(vla_state)
    for layer in llm.model.layers:
        layer.self_attn.is_causal = False
    num_prompt_tokens = input_ids.shape[1] - 1
    ids = torch.cat([input_ids, torch.ones(1, num_action_tokens, dtype=torch.long), torch.full((1, 1), 2)], dim=1)
    action_mask = torch.zeros_like(ids, dtype=torch.bool)
    action_mask[:, input_ids.shape[1] : -1] = True
    with torch.no_grad():
        embeds = llm.get_input_embeddings()(ids) * ~action_mask[..., None]
        vits = reference_featurizers(vla_state)
        patches = torch.cat([reference_projector(vla_state, reference_patches(vits, images[:, cam]))
                             for cam in range(images.shape[1])], dim=1)
        p = "proprio_projector."
        first = f.gelu(f.linear(state[:, :proprio_dim], vla_state[p + "fc1.weight"], vla_state[p + "fc1.bias"]))
        proprio = f.linear(first, vla_state[p + "fc2.weight"], vla_state[p + "fc2.bias"])
        sequence = torch.cat([embeds[:, :1], patches, proprio[:, None], embeds[:, 1:]], dim=1)
        hidden = llm.model(inputs_embeds=sequence).last_hidden_state
    num_patches = patches.shape[1] + 1
    return hidden[:, num_patches + num_prompt_tokens : num_patches + num_prompt_tokens + num_action_tokens]


# ---- released checkpoint layouts (tiny, random) -------------------------------------------------
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def released_state(seed: int) -> dict[str, torch.Tensor]:
    """Random weights in the layout of `OpenVLAForActionPrediction.state_dict()`, from timm and transformers."""
    import timm
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, model_id, overrides in zip(("featurizer", "fused_featurizer"), TIMM_IDS, TIMM_OVERRIDES, strict=True):
        vit = timm.create_model(model_id, pretrained=False, num_classes=0, img_size=IMAGE_SIZE, **overrides)
        for key, value in vit.state_dict().items():
            if key.endswith(".gamma"):  # ls_apply_patch: gamma -> scale_factor; random values to be visible
                key, value = key.replace(".gamma", ".scale_factor"), torch.rand_like(value) + 0.5
            state[f"vision_backbone.{name}.{key}"] = value
    dims = [(4 * VISION_DIM, VISION_DIM), (64, 4 * VISION_DIM), (64, 64)]
    for index, (out_dim, in_dim) in enumerate(dims, start=1):
        linear = torch.nn.Linear(in_dim, out_dim)
        state[f"projector.fc{index}.weight"], state[f"projector.fc{index}.bias"] = linear.weight, linear.bias
    llm = LlamaForCausalLM(LlamaConfig(**TEXT_CONFIG, tie_word_embeddings=False))
    state.update({f"language_model.{k}": v for k, v in llm.state_dict().items()})
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in state.items()}  # released weights are bf16


def write_released_openvla(directory: Any, state: dict[str, torch.Tensor], norm_stats: dict[str, Any]) -> None:
    """config.json + two safetensors shards + index, as `save_pretrained` of the HF model writes them."""
    import json

    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    config = {
        "model_type": "openvla", "architectures": ["OpenVLAForActionPrediction"],
        "vision_backbone_id": "dinosiglip-vit-so-224px", "use_fused_vision_backbone": True,
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "image_sizes": [IMAGE_SIZE, IMAGE_SIZE],
        "image_resize_strategy": "resize-naive",
        "text_config": {"model_type": "llama", "torch_dtype": "bfloat16", **TEXT_CONFIG},
        "pad_to_multiple_of": 64, "n_action_bins": 256, "norm_stats": norm_stats, "torch_dtype": "bfloat16",
        "vla_timm_overrides": TIMM_OVERRIDES,  # tiny random ViTs; absent in released configs
    }
    (directory / "config.json").write_text(json.dumps(config))
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2 :]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(directory / name), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: name for name, names in shards.items() for k in names}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))


def write_preprocessor_config(directory: Any, strategy: str = "resize-naive") -> dict[str, Any]:
    """preprocessor_config.json as `PrismaticImageProcessor.save_pretrained` writes it (the tvf_* attributes
    included), for the tiny featurizers' IMAGE_SIZE input."""
    import json

    size = [3, IMAGE_SIZE, IMAGE_SIZE]
    resize = {"size": [IMAGE_SIZE, IMAGE_SIZE] if strategy == "resize-naive" else IMAGE_SIZE,
              "interpolation": 3, "max_size": None, "antialias": True}
    config = {
        "image_processor_type": "PrismaticImageProcessor", "processor_class": "PrismaticProcessor",
        "use_fused_vision_backbone": True, "image_resize_strategy": strategy,
        "input_sizes": [size, size], "interpolations": ["bicubic", "bicubic"],
        "means": [IMAGENET_MEAN, [0.5, 0.5, 0.5]], "stds": [IMAGENET_STD, [0.5, 0.5, 0.5]],
        "tvf_resize_params": [resize, resize], "tvf_crop_params": [{"output_size": [IMAGE_SIZE, IMAGE_SIZE]}] * 2,
        "tvf_normalize_params": [{"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "inplace": False},
                                 {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "inplace": False}],
        "tvf_do_letterbox": strategy == "letterbox",
        "tvf_letterbox_fill": [127, 127, 127] if strategy == "letterbox" else None,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(config))
    return config


TOKENIZER_TEXTS = [
    "In: What action should the robot take to pick up the red block?\nOut:",
    "In: What action should the robot take to put the bowl on the plate?\nOut:",
    "open the top drawer and put the bowl inside",
]


def write_llama_tokenizer(directory: Any) -> None:
    """A tiny LLaMA-style BPE tokenizer trained here with `tokenizers` (Metaspace "▁" words, <unk> 0,
    <s> 1, </s> 2, BOS prepended, <PAD> added last), saved as LLaMA-2's tokenizer files are
    (tokenizer.json, tokenizer_config.json, special_tokens_map.json)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=["▁"])
    tokenizer.train_from_iterator(TOKENIZER_TEXTS * 4, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer.add_special_tokens(["<PAD>"])
    tokenizer.save(str(directory / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<PAD>"}
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
        "model_max_length": 2048, "padding_side": "right", **special}))
    (directory / "special_tokens_map.json").write_text(json.dumps(special))


def oft_head_and_proprio(llm_dim: int, action_dim: int, proprio_dim: int, hidden: int = 48, seed: int = 23,
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Random OFT `L1RegressionActionHead` (MLPResNet, 2 blocks) and `ProprioProjector` state dicts with
    the DDP `module.` prefix, as OFT's training saves them."""
    torch.manual_seed(seed)
    d = llm_dim * action_dim
    head = {"module.model.layer_norm1.weight": torch.rand(d) + 0.5, "module.model.layer_norm1.bias": torch.randn(d),
            "module.model.fc1.weight": torch.randn(hidden, d) * 0.05, "module.model.fc1.bias": torch.randn(hidden),
            "module.model.layer_norm2.weight": torch.rand(hidden) + 0.5,
            "module.model.layer_norm2.bias": torch.randn(hidden),
            "module.model.fc2.weight": torch.randn(action_dim, hidden) * 0.1,
            "module.model.fc2.bias": torch.randn(action_dim)}
    for block in range(2):
        head.update({f"module.model.mlp_resnet_blocks.{block}.ffn.0.weight": torch.rand(hidden) + 0.5,
                     f"module.model.mlp_resnet_blocks.{block}.ffn.0.bias": torch.randn(hidden),
                     f"module.model.mlp_resnet_blocks.{block}.ffn.1.weight": torch.randn(hidden, hidden) * 0.1,
                     f"module.model.mlp_resnet_blocks.{block}.ffn.1.bias": torch.randn(hidden)})
    proprio = {"module.fc1.weight": torch.randn(llm_dim, proprio_dim) * 0.3, "module.fc1.bias": torch.randn(llm_dim),
               "module.fc2.weight": torch.randn(llm_dim, llm_dim) * 0.1, "module.fc2.bias": torch.randn(llm_dim)}
    return head, proprio


@pytest.fixture(scope="session")
def ref() -> Any:
    """This module: tiny specs, batches and the reference computations (tests cannot import
    conftest under --import-mode=importlib)."""
    return sys.modules[__name__]


@pytest.fixture(scope="module")
def tiny_openvla():
    import vla_core

    torch.manual_seed(0)
    return vla_core.build_vla(openvla_spec()).eval()


@pytest.fixture(scope="module")
def tiny_oft():
    import vla_core

    torch.manual_seed(0)
    return vla_core.build_vla(oft_spec()).eval()
