"""OpenVLA's language model: transformers' causal LM (LLaMA-2 7B) built from a config dict.

OpenVLA's released `config.json` sets only `vocab_size: 32064` (LLaMA's 32000 tokens
padded to a multiple of 64) and `pad_token_id: 32000` in its `text_config`; every other
field is a transformers 4.40 `LlamaConfig` default. Those defaults are written out
here, so a change of transformers' defaults cannot change the architecture.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vla_core.errors import ConfigError

#: LLaMA-2 7B as OpenVLA builds it (transformers 4.40 LlamaConfig defaults + OpenVLA's overrides).
OPENVLA_7B_TEXT_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 32064,
    "pad_token_id": 32000,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attention_bias": False,
    "tie_word_embeddings": False,
}


def text_config_with_defaults(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """OpenVLA-7B's text config updated with `overrides` (e.g. a tiny hidden_size).

    A smaller `vocab_size` without a `pad_token_id` drops OpenVLA's pad id 32000, which
    would lie outside the embedding table.
    """
    overrides = dict(overrides or {})
    config = {**OPENVLA_7B_TEXT_CONFIG, **overrides}
    if "pad_token_id" not in overrides and config["vocab_size"] <= OPENVLA_7B_TEXT_CONFIG["pad_token_id"]:
        config["pad_token_id"] = None
    return config


def build_language_model(text_config: dict[str, Any], attn_implementation: str = "sdpa") -> nn.Module:
    """A randomly initialised causal LM (`model.*`, `lm_head.weight`) from a transformers config dict."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = dict(text_config)
    model_type = config.pop("model_type", "llama")
    config.pop("torch_dtype", None)  # the released config carries it; weights set the dtype
    try:
        hf_config = AutoConfig.for_model(model_type, **config)
    except ValueError as exc:
        raise ConfigError(f"model_type '{model_type}' is not a transformers model type ({exc}).",
                          "text_config.model_type") from None
    hf_config._attn_implementation = attn_implementation
    return AutoModelForCausalLM.from_config(hf_config)


def additive_attention_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """allowed (B, S, S) bool (query, key) -> (B, 1, S, S) additive mask: 0 where allowed,
    the dtype's minimum elsewhere. transformers passes a 4D mask through unchanged, to
    both its sdpa and eager attention."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)
