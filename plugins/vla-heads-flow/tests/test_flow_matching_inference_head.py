"""FlowMatchingInferenceHead: same weights, same predictions as FlowMatchingHead, faster.

CUDA-graph capture only runs on CUDA devices and is not exercised here (no GPU in CI).
"""

from __future__ import annotations

import pytest
import torch
from vla_heads_flow.flow_matching_head import FlowMatchingHead
from vla_heads_flow.flow_matching_inference_head import FlowMatchingInferenceHead

from vla_core.errors import VLAError
from vla_core.models import build_component
from vla_core.models.weights import load_into, load_state_dict, save_state_dict

TOL = 1e-5


def twins(config: dict, **inference_kwargs) -> tuple[FlowMatchingHead, FlowMatchingInferenceHead]:
    torch.manual_seed(0)
    head = FlowMatchingHead(**config)
    with torch.no_grad():  # non-zero biases everywhere, so every term is exercised
        for name, p in head.named_parameters():
            if name.endswith((".b", ".bias")):
                p.normal_(0, 0.1)
    fast = FlowMatchingInferenceHead(**config, **inference_kwargs)
    fast.load_state_dict(head.state_dict(), strict=True)
    return head.eval(), fast.eval()


def predict_both(head, fast, inputs, **overrides):
    kwargs = {**inputs, **overrides}
    return head.predict_action(**kwargs), fast.predict_action(**kwargs)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"ori_action_dim": 3},
        {"ori_action_dim": 3, "zero_padded_action_dims": True},
        {"interleave_self_attention": False},
        {"num_layers": 3},  # the last block is a cross-attention block
        {"vl_self_attention_layers": 0, "use_vlln": False, "add_pos_embed": False},
        {"mask_padding": True},
    ],
)
@pytest.mark.parametrize("prepack_weights", [True, False])
def test_predictions_equal_the_training_head(tiny_flow, flow_inputs, variant, prepack_weights):
    head, fast = twins({**tiny_flow, **variant}, prepack_weights=prepack_weights)
    expected, ours = predict_both(head, fast, flow_inputs)  # mixed embodiments, padded row
    assert ours.shape == expected.shape == (3, 4, variant.get("ori_action_dim", 5))
    assert expected.abs().max() > 0.1  # a non-trivial sample
    assert torch.allclose(ours, expected, atol=TOL), (ours - expected).abs().max()
    # one embodiment for the whole batch takes the packed encoder/decoder path
    expected, ours = predict_both(head, fast, flow_inputs, embodiment_id=torch.tensor([2, 2, 2]))
    assert torch.allclose(ours, expected, atol=TOL), (ours - expected).abs().max()
    # new shapes (batch, sequence) and fresh noise on the same cached weights
    smaller = {"input_features": flow_inputs["input_features"][:1, :5], "states": flow_inputs["states"][:1],
               "attention_mask": flow_inputs["attention_mask"][:1, :5]}
    torch.manual_seed(5)
    expected = head.predict_action(**smaller)
    torch.manual_seed(5)
    assert torch.allclose(fast.predict_action(**smaller), expected, atol=TOL)


@pytest.mark.slow  # torch.compile of the step takes ~20-90 s on a shared 2-core CPU
def test_compiled_step_equals_the_training_head(tiny_flow, flow_inputs):
    head, fast = twins({**tiny_flow, "num_layers": 2}, compile=True)
    inputs = {**flow_inputs, "embodiment_id": torch.tensor([1, 1, 1])}
    expected, ours = predict_both(head, fast, inputs)
    assert fast._compiled is not None
    assert torch.allclose(ours, expected, atol=TOL), (ours - expected).abs().max()
    noise = torch.randn_like(flow_inputs["noise"])  # the compiled step is reused with new inputs
    expected, ours = predict_both(head, fast, inputs, noise=noise)
    assert torch.allclose(ours, expected, atol=TOL), (ours - expected).abs().max()


def test_state_dicts_load_strictly_both_ways(tiny_flow, flow_inputs, tmp_path):
    head, fast = twins(tiny_flow)
    save_state_dict(fast.state_dict(), tmp_path / "fast")
    save_state_dict(head.state_dict(), tmp_path / "head")
    torch.manual_seed(1)
    other_head, other_fast = FlowMatchingHead(**tiny_flow).eval(), FlowMatchingInferenceHead(**tiny_flow).eval()
    assert load_into(other_head, load_state_dict(tmp_path / "fast"), strict=True).ok
    assert load_into(other_fast, load_state_dict(tmp_path / "head"), strict=True).ok
    expected = head.predict_action(**flow_inputs)
    assert torch.allclose(other_head.predict_action(**flow_inputs), expected, atol=TOL)
    assert torch.allclose(other_fast.predict_action(**flow_inputs), expected, atol=TOL)


def test_cache_follows_the_weights(tiny_flow, flow_inputs):
    _, fast = twins(tiny_flow)
    before = fast.predict_action(**flow_inputs)
    torch.manual_seed(9)
    retrained = FlowMatchingHead(**tiny_flow).eval()
    fast.load_state_dict(retrained.state_dict())  # in-place copy: the packed weights are stale now
    after = fast.predict_action(**flow_inputs)
    assert not torch.allclose(after, before)
    assert torch.allclose(after, retrained.predict_action(**flow_inputs), atol=TOL)
    with torch.no_grad():
        fast.model.proj_out_2.bias.add_(1.0)
        retrained.model.proj_out_2.bias.add_(1.0)
    assert torch.allclose(fast.predict_action(**flow_inputs), retrained.predict_action(**flow_inputs), atol=TOL)


def test_inference_only_and_built_from_a_config(tiny_flow, flow_inputs):
    fast = build_component("heads", {"type": "FlowMatchingInferenceHead", **tiny_flow, "compile": False})
    assert isinstance(fast, FlowMatchingInferenceHead)
    assert fast.supports_compile and not FlowMatchingHead.supports_compile
    with pytest.raises(VLAError, match="inference-only"):
        fast(flow_inputs["input_features"], flow_inputs["states"], flow_inputs["attention_mask"],
             torch.zeros(3, 4, 5), torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(VLAError, match="out of range"):
        fast.predict_action(**{**flow_inputs, "embodiment_id": torch.tensor([0, 0, 7])})
