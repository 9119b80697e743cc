"""The example plugin, tested as a user installs it: listed, built from a config, trained a step."""

from __future__ import annotations

import torch

import vla_core
from vla_core.testing import assert_plugin_is_light, check_action_head, make_tiny_batch, tiny_vla_spec


def test_listed_with_its_package():
    rows = {r.name: r for r in vla_core.list_components(kind="heads")}
    assert rows["AttentionPoolingHead"].package == "vla-example-head"


def test_plugin_stays_light():
    assert_plugin_is_light("vla-example-head")


def test_head_contract():
    head = vla_core.build_component(
        "heads", {"type": "AttentionPoolingHead", "input_dim": 16, "action_dim": 3, "chunk_size": 4, "state_dim": 5}
    )
    check_action_head(head, input_dim=16, state_dim=5, action_dim=3, chunk_size=4)


def test_one_training_step_inside_a_vla():
    head = {"type": "AttentionPoolingHead", "input_dim": 48, "action_dim": 3, "chunk_size": 4, "state_dim": 4,
            "hidden_dim": 32}
    torch.manual_seed(0)
    vla = vla_core.build_vla(tiny_vla_spec(head=head))
    batch = make_tiny_batch()
    optimizer = torch.optim.AdamW(vla.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in vla.vla_head.state_dict().items()}
    loss = vla(**batch)["loss"]
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[k], v) for k, v in vla.vla_head.state_dict().items())
    obs = {k: v for k, v in batch.items() if k not in ("actions", "action_masks")}
    assert vla.predict_action(**obs).shape == (2, 4, 3)
