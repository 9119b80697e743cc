"""PrismaticProjector: reference key names per arch and the reference computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vla_core import build_component


@pytest.mark.parametrize(
    ("arch", "keys", "widths"),
    [
        ("fused-gelu-mlp", ["fc1", "fc2", "fc3"], [(40, 10), (6, 40), (6, 6)]),
        ("gelu-mlp", ["fc1", "fc2"], [(6, 10), (6, 6)]),
        ("linear", ["fc1"], [(6, 10)]),
    ],
)
def test_key_names_and_shapes_match_modeling_prismatic(arch, keys, widths):
    projector = build_component("projectors", {"type": "PrismaticProjector", "in_dim": 10, "out_dim": 6, "arch": arch})
    state = projector.state_dict()
    assert sorted(state) == sorted(f"{k}.{p}" for k in keys for p in ("weight", "bias"))
    assert [tuple(state[f"{k}.weight"].shape) for k in keys] == widths
    assert (projector.in_dim, projector.out_dim) == (10, 6)


def test_fused_projector_matches_the_reference_computation(ref):
    projector = build_component("projectors", {"type": "PrismaticProjector", "in_dim": 10, "out_dim": 6})
    x = torch.randn(2, 5, 10)
    with torch.no_grad():
        torch.testing.assert_close(projector(x), ref.reference_projector(projector.state_dict(), x, prefix=""))


def test_gelu_mlp_is_ofts_proprio_projector():
    """OFT's ProprioProjector: fc1 (proprio -> llm), GELU, fc2 (llm -> llm)."""
    projector = build_component("projectors", {"type": "PrismaticProjector", "in_dim": 8, "out_dim": 16,
                                               "arch": "gelu-mlp"})
    s = projector.state_dict()
    state = torch.randn(3, 8)
    expected = F.linear(F.gelu(F.linear(state, s["fc1.weight"], s["fc1.bias"])), s["fc2.weight"], s["fc2.bias"])
    with torch.no_grad():
        torch.testing.assert_close(projector(state), expected)


def test_native_prismatic_fused_projector_loads_through_name_mapping():
    """Prismatic's training checkpoints hold the fused MLP as `projector.projector.{0,2,4}`."""
    from vla_core.models import load_into

    native = torch.nn.Sequential(torch.nn.Linear(10, 40), torch.nn.GELU(), torch.nn.Linear(40, 6), torch.nn.GELU(),
                                 torch.nn.Linear(6, 6))
    checkpoint = {f"projector.projector.{k}": v for k, v in native.state_dict().items()}
    holder = torch.nn.Module()
    holder.projector = build_component("projectors", {"type": "PrismaticProjector", "in_dim": 10, "out_dim": 6})
    mapping = {f"projector.fc{i + 1}": f"projector.projector.{2 * i}" for i in range(3)}
    report = load_into(holder, checkpoint, mapping)
    assert report.ok and len(report.loaded) == 6
    x = torch.randn(4, 10)
    with torch.no_grad():
        torch.testing.assert_close(holder.projector(x), native(x))
