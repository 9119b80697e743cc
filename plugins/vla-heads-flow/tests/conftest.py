"""Shared sizes and inputs for the vla-heads-flow tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch

TINY_FLOW = dict(
    backbone_embedding_dim=24,
    state_dim=6,
    action_dim=5,
    traj_length=4,
    hidden_size=20,
    input_embedding_dim=16,
    num_layers=4,
    num_heads=2,
    vl_self_attention_layers=2,
    vl_self_attention_heads=3,
    num_target_vision_tokens=3,
    max_num_embodiments=3,
    max_seq_len=8,
    num_inference_timesteps=4,
    dropout=0.0,
)


@pytest.fixture
def tiny_flow() -> dict[str, Any]:
    """FlowMatchingHead kwargs at a tiny size (same structure as GR00T N1.5: interleaved
    cross/self-attention DiT, vlln + vl_self_attention, future tokens, position embedding)."""
    return dict(TINY_FLOW)


@pytest.fixture
def flow_inputs() -> dict[str, torch.Tensor]:
    """Backbone features (B=3, S=7) with padding in row 1, states, noise, mixed embodiments."""
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    return {
        "input_features": torch.randn(3, 7, TINY_FLOW["backbone_embedding_dim"], generator=g),
        "states": torch.randn(3, TINY_FLOW["state_dim"], generator=g),
        "attention_mask": mask,
        "noise": torch.randn(3, TINY_FLOW["traj_length"], TINY_FLOW["action_dim"], generator=g),
        "embodiment_id": torch.tensor([0, 2, 1]),
    }


@pytest.fixture
def vla_cli(capsys):
    """Run the `vla` CLI in this process -> (exit code, stdout)."""
    from vla_core.cli import main

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, capsys.readouterr().out

    return run


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a shared CPU makes multi-thread sync slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
