"""FlowMatchingHead: the action-head contract, training, masking, truncation, embodiments."""

from __future__ import annotations

import json

import pytest
import torch
from vla_heads_flow.flow_matching_head import FlowMatchingHead

from vla_core.errors import ConfigError, DataError, VLAError
from vla_core.testing import assert_plugin_is_light, check_action_head


def test_action_head_contract(tiny_flow):
    torch.manual_seed(0)
    check_action_head(FlowMatchingHead(**{**tiny_flow, "dropout": 0.2}), input_dim=24, state_dim=6, action_dim=5,
                      chunk_size=4)
    check_action_head(FlowMatchingHead(**tiny_flow, ori_action_dim=3), input_dim=24, state_dim=6, action_dim=3,
                      chunk_size=4)


def test_output_shapes_and_padded_steps(tiny_flow, flow_inputs):
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow)
    actions = torch.randn(3, 4, 5)
    action_masks = torch.tensor([[True] * 4, [True, True, False, False], [True] * 4])
    kwargs = {k: flow_inputs[k] for k in ("noise", "embodiment_id")}
    feats, states, mask = flow_inputs["input_features"], flow_inputs["states"], flow_inputs["attention_mask"]
    t = torch.tensor([0.2, 0.6, 0.9])
    out = head(feats, states, mask, actions, action_masks, flow_time=t, **kwargs)
    assert out["loss"].ndim == 0
    assert out["pred_actions"].shape == out["pred_velocity"].shape == (3, 4, 5)
    changed = actions.clone()
    changed[1, 2:] = 50.0  # only masked-out steps
    again = head(feats, states, mask, changed, action_masks, flow_time=t, **kwargs)
    assert torch.equal(out["loss"], again["loss"])
    changed[1, 1] = 50.0  # a valid step
    assert not torch.equal(out["loss"], head(feats, states, mask, changed, action_masks, flow_time=t, **kwargs)["loss"])
    assert head.eval().predict_action(feats, states, mask, **kwargs).shape == (3, 4, 5)


def test_loss_decreases_when_overfitting_one_batch(tiny_flow, flow_inputs):
    """One fixed batch (actions, noise and flow time fixed): the whole head must fit it."""
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow)
    feats, states, mask = flow_inputs["input_features"], flow_inputs["states"], flow_inputs["attention_mask"]
    g = torch.Generator().manual_seed(3)
    batch = dict(
        actions=torch.randn(3, 4, 5, generator=g).clamp(-2, 2),
        action_masks=torch.ones(3, 4, dtype=torch.bool),
        embodiment_id=flow_inputs["embodiment_id"],
        noise=flow_inputs["noise"],
        flow_time=torch.rand(3, generator=g),
    )
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = head(feats, states, mask, **batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], (losses[0], losses[-1])  # typically ~0.08x


def test_ori_action_dim_truncates_and_padded_dims_follow_the_reference(tiny_flow, flow_inputs):
    """GR00T (FlowmatchingActionHead.get_action) draws noise over all action_dim dims and never
    zeroes the padded ones; they take part in attention, so they change the real dims."""
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow, ori_action_dim=3).eval()
    feats, states, mask = flow_inputs["input_features"], flow_inputs["states"], flow_inputs["attention_mask"]
    noise = flow_inputs["noise"]
    pred = head.predict_action(feats, states, mask, noise=noise)
    assert pred.shape == (3, 4, 3)
    # the reference's sample: the full-width head's Euler integration, cut to ori_action_dim
    full = FlowMatchingHead(**tiny_flow).eval()
    full.load_state_dict(head.state_dict())
    assert torch.equal(pred, full.predict_action(feats, states, mask, noise=noise)[..., :3])
    garbage = noise.clone()
    garbage[..., 3:] = 100.0  # the padded dims' noise matters, as in the reference
    assert not torch.allclose(pred, head.predict_action(feats, states, mask, noise=garbage))

    # the deviation, on request: padded dims held at zero in the noise and after every step
    zeroed = FlowMatchingHead(**tiny_flow, ori_action_dim=3, zero_padded_action_dims=True).eval()
    zeroed.load_state_dict(head.state_dict())
    held = zeroed.predict_action(feats, states, mask, noise=noise)
    assert torch.equal(held, zeroed.predict_action(feats, states, mask, noise=noise[..., :3]))
    assert torch.equal(held, zeroed.predict_action(feats, states, mask, noise=garbage))
    assert not torch.allclose(held, pred)

    # training: targets beyond ori_action_dim do not count; actions may come at ori width
    actions, action_masks = torch.randn(3, 4, 5), torch.ones(3, 4, dtype=torch.bool)
    t = torch.tensor([0.3, 0.5, 0.8])
    out = head(feats, states, mask, actions, action_masks, noise=noise, flow_time=t)
    assert out["pred_actions"].shape == (3, 4, 3)
    padded = actions.clone()
    padded[..., 3:] = 0
    assert torch.allclose(out["loss"], head(feats, states, mask, padded, action_masks, noise=noise,
                                            flow_time=t)["loss"])
    assert torch.allclose(out["loss"], head(feats, states, mask, actions[..., :3], action_masks, noise=noise,
                                            flow_time=t)["loss"])


def test_use_vlln_false_builds_no_vl_self_attention(tiny_flow, flow_inputs):
    """GR00T builds `vlln` and `vl_self_attention` only with use_vlln (both Identity otherwise)."""
    head = FlowMatchingHead(**tiny_flow, use_vlln=False)
    assert head.vl_self_attention is None and isinstance(head.vlln, torch.nn.Identity)
    assert not any(k.startswith(("vl_self_attention.", "vlln.")) for k in head.state_dict())
    with_vlln = FlowMatchingHead(**tiny_flow)
    assert with_vlln.vl_self_attention is not None and any(
        k.startswith("vl_self_attention.") for k in with_vlln.state_dict())
    feats, states, mask, noise = (flow_inputs[k] for k in ("input_features", "states", "attention_mask", "noise"))
    assert head.eval().predict_action(feats, states, mask, noise=noise).shape == (3, 4, 5)


def test_embodiment_ids_pick_their_own_weights(tiny_flow, flow_inputs):
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow).eval()
    feats, states, mask, noise = (flow_inputs[k] for k in ("input_features", "states", "attention_mask", "noise"))
    mixed = head.predict_action(feats, states, mask, noise=noise, embodiment_id=torch.tensor([0, 2, 1]))
    for row, eid in enumerate([0, 2, 1]):
        alone = head.predict_action(feats[row : row + 1], states[row : row + 1], mask[row : row + 1],
                                    noise=noise[row : row + 1], embodiment_id=eid)
        assert torch.allclose(mixed[row : row + 1], alone, atol=1e-6)
    default = head.predict_action(feats, states, mask, noise=noise)
    assert torch.equal(default, head.predict_action(feats, states, mask, noise=noise, embodiment_id=torch.zeros(3)
                                                    .long()))
    assert not torch.allclose(default, mixed)


@pytest.mark.parametrize(
    ("embodiment_id", "message"),
    [(torch.tensor([0, 3, 1]), "out of range"), (torch.tensor([-1, 0, 0]), "out of range"),
     (torch.tensor([0, 1]), "2 entries for a batch of 3"), (torch.tensor([0.0, 1.0, 1.0]), "integer")],
)
def test_bad_embodiment_id_is_a_clear_error(tiny_flow, flow_inputs, embodiment_id, message):
    head = FlowMatchingHead(**tiny_flow)
    feats, states, mask = flow_inputs["input_features"], flow_inputs["states"], flow_inputs["attention_mask"]
    with pytest.raises(VLAError, match=message) as info:
        head.predict_action(feats, states, mask, embodiment_id=embodiment_id)
    if message == "out of range":
        assert "max_num_embodiments=3" in str(info.value)
    with pytest.raises(DataError, match=message):
        head(feats, states, mask, torch.randn(3, 4, 5), torch.ones(3, 4, dtype=torch.bool), embodiment_id=embodiment_id)


def test_backbone_padding_is_masked(tiny_flow, flow_inputs):
    torch.manual_seed(0)
    feats, states, mask, noise = (flow_inputs[k] for k in ("input_features", "states", "attention_mask", "noise"))
    altered = feats.clone()
    altered[1, 5:] = 30.0  # padded positions of row 1
    masked = FlowMatchingHead(**tiny_flow, mask_padding=True).eval()
    pred = masked.predict_action(feats, states, mask, noise=noise)
    assert torch.allclose(pred, masked.predict_action(altered, states, mask, noise=noise), atol=1e-6)

    reference_like = FlowMatchingHead(**tiny_flow, mask_padding=False).eval()
    reference_like.load_state_dict(masked.state_dict())
    changed = reference_like.predict_action(altered, states, mask, noise=noise)
    assert not torch.allclose(changed[1], reference_like.predict_action(feats, states, mask, noise=noise)[1])
    full = torch.ones_like(mask)  # without padding both behave the same
    assert torch.allclose(masked.predict_action(feats, states, full, noise=noise),
                          reference_like.predict_action(feats, states, full, noise=noise), atol=1e-6)


def test_input_checks(tiny_flow, flow_inputs):
    head = FlowMatchingHead(**tiny_flow).eval()
    feats, states, mask, noise = (flow_inputs[k] for k in ("input_features", "states", "attention_mask", "noise"))
    with pytest.raises(DataError, match="backbone_embedding_dim"):
        head.predict_action(feats[..., :20], states, mask)
    with pytest.raises(DataError, match="state_dim is 6"):
        head.predict_action(feats, torch.randn(3, 9), mask)
    with pytest.raises(DataError, match=r"\(B, 4, A\)"):
        head.predict_action(feats, states, mask, noise=noise[:, :3])
    with pytest.raises(DataError, match="action_dim=5"):
        head(feats, states, mask, torch.randn(3, 4, 2), torch.ones(3, 4, dtype=torch.bool))
    # a shorter state is zero-padded to state_dim, like GR00T's max_state_dim padding
    short = states[:, :4]
    padded = torch.cat([short, torch.zeros(3, 2)], dim=1)
    assert torch.equal(head.predict_action(feats, short, mask, noise=noise),
                       head.predict_action(feats, padded, mask, noise=noise))
    assert torch.equal(head.predict_action(feats, padded[:, None], mask, noise=noise),
                       head.predict_action(feats, padded, mask, noise=noise))


def test_noise_makes_sampling_reproducible(tiny_flow, flow_inputs):
    torch.manual_seed(0)
    head = FlowMatchingHead(**tiny_flow).eval()
    feats, states, mask, noise = (flow_inputs[k] for k in ("input_features", "states", "attention_mask", "noise"))
    first = head.predict_action(feats, states, mask, noise=noise)
    assert torch.equal(first, head.predict_action(feats, states, mask, noise=noise))
    assert not torch.allclose(first, head.predict_action(feats, states, mask, noise=noise + 1))


@pytest.mark.parametrize(
    ("override", "path"),
    [({"num_heads": 3}, "vla_head.num_heads"), ({"vl_self_attention_heads": 5}, "vla_head.vl_self_attention_heads"),
     ({"ori_action_dim": 6}, "vla_head.ori_action_dim"), ({"traj_length": 9}, "vla_head.max_seq_len"),
     ({"num_inference_timesteps": 0}, "vla_head.num_inference_timesteps"),
     ({"zero_padded_action_dims": True}, "vla_head.zero_padded_action_dims")],
)
def test_bad_sizes_are_config_errors(tiny_flow, override, path):
    with pytest.raises(ConfigError) as info:
        FlowMatchingHead(**{**tiny_flow, **override})
    assert info.value.path == path


def test_plugin_is_light():
    assert_plugin_is_light("vla-heads-flow")


@pytest.mark.parametrize("name", ["FlowMatchingHead", "FlowMatchingInferenceHead", "DiffusionActionHead"])
def test_vla_info_documents_every_parameter(name, vla_cli):
    from vla_core.cli.component_info import describe_component

    (info,) = describe_component(name, "heads")
    assert info["package"] == "vla-heads-flow"
    params = {p["name"]: p for p in info["parameters"]}
    assert params, name
    for param in params.values():
        assert param["type"] and param["type"] != "any", param
        assert param["default"], param
        assert len(param["description"]) > 10, param
    if name != "DiffusionActionHead":
        assert params["num_inference_timesteps"]["default"] == "4"
        assert params["ori_action_dim"]["type"] == "int | None"
    code, out = vla_cli("info", name, "--json")
    assert code == 0
    shown = json.loads(out)
    shown = shown[0] if isinstance(shown, list) else shown
    assert {p["name"]: p["description"] for p in shown["parameters"]} == {
        n: p["description"] for n, p in params.items()
    }
