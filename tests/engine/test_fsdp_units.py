"""FSDP2 units beyond the layers (token embeddings, LM heads) and gloo collectives in
pieces: `vla_core/engine/fsdp.py`, `fsdp_early_reduce.py`, `gloo_collectives.py`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from engine_fixtures import run_script
from torch import nn

from vla_core.engine.fsdp import OWN_UNIT_MIN_PARAMETERS, large_modules_outside

SCRIPT = Path(__file__).with_name("fsdp_units_script.py")


def test_two_processes_reduce_the_embedding_early_and_collect_in_pieces(tmp_path):
    out = tmp_path / "result"
    run_script([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                str(SCRIPT), str(out)])
    for rank in range(2):
        result = json.loads(Path(f"{out}.rank{rank}.json").read_text())
        # 126 gloo calls of 8 columns give bit for bit what one whole-buffer call gives.
        assert result["match"] and all(result["match"].values()), result["match"]
        # gloo's own reduce-scatter of 64 MiB stages a 64 MiB copy; ours 2 x 4 MiB pieces
        # (ours and gloo's), with allocator slack.
        assert result["peak_mib"]["piecewise"] < 32, result["peak_mib"]
        assert result["own units"] == ["embed"]
        assert result["embedding gradient reduced before the vision backward"] is True
        assert result["mismatched gradients"] == []


class TiedLM(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.embed = nn.Embedding(vocab, 8)
        self.norm = nn.LayerNorm(8)
        self.lm_head = nn.Linear(8, vocab, bias=False)
        self.small = nn.Linear(8, 8)


def test_own_units_are_untied_embeddings_and_large_leaves():
    with torch.device("meta"):
        vocab = OWN_UNIT_MIN_PARAMETERS // 8  # lm_head holds exactly the threshold
        untied, tied = TiedLM(vocab), TiedLM(vocab)
        tied.lm_head.weight = tied.embed.weight
    names = {model: [n for n, m in model.named_modules() if m in large_modules_outside(model, list(model.layers))]
             for model in (untied, tied)}
    assert names[untied] == ["embed", "lm_head"]  # norm and small linear stay in the root
    assert names[tied] == []  # both users need the one weight: FSDP2 gives it to one unit
    # Modules inside a layer unit are never units again.
    assert large_modules_outside(untied, [untied]) == []
