"""LLaMa2LLMBackbone from FluxVLA's `llm_path` records its architecture (the table already
padded), so a checkpoint rebuilds it once that directory is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from vla_core.testing import check_records_architecture


def test_llama2_from_llm_path_rebuilds_without_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, pad_token_id=99)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    spec = {"type": "LLaMa2LLMBackbone", "llm_path": str(tmp_path / "llama"), "pad_token_id": 99,
            "tokenizer_length": 101}
    built, rebuilt = check_records_architecture("llm_backbones", spec, lambda: shutil.rmtree(tmp_path / "llama"))
    assert built.llm.get_input_embeddings().num_embeddings == 128  # 101 padded to a multiple of 64
    assert built.component_spec["llm_config"]["hidden_size"] == 32
    tokens = torch.randint(0, 101, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(rebuilt.embed_tokens(tokens), mask).features,
                                   built(built.embed_tokens(tokens), mask).features, atol=0, rtol=0)
