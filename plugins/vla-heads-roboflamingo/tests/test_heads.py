"""The three RoboFlamingo heads on their own: vla's head contract (with the stateful case:
windows with padded frames, online one frame at a time equal to the batched window), the
loss as RoboFlamingo computes it, and the reference's parameter names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from vla_heads_roboflamingo.fc_decoder import FCDecoder
from vla_heads_roboflamingo.gpt_decoder import GPTDecoder
from vla_heads_roboflamingo.lstm_decoder import DeterministicDecoder

from vla_core.errors import DataError
from vla_core.testing import check_action_head

HEADS = {"FCDecoder": FCDecoder, "DeterministicDecoder": DeterministicDecoder, "GPTDecoder": GPTDecoder}


@pytest.fixture
def build(head_kwargs):
    """build(name, **overrides) -> the tiny head, seeded."""

    def make(name: str, **overrides) -> torch.nn.Module:
        torch.manual_seed(0)
        return HEADS[name](**head_kwargs(name, **overrides))

    return make


@pytest.mark.parametrize("use_state", [False, True])
@pytest.mark.parametrize("name", list(HEADS))
def test_head_contract_with_windows_and_online_steps(build, name, use_state):
    head = build(name, use_state=use_state, state_dim=5)
    assert head.supports_history and head.action_dim == 4 and head.chunk_size == 2
    check_action_head(head, input_dim=16, state_dim=5, action_dim=4, chunk_size=2)


def test_online_window_is_the_references(build):
    """The LSTM steps from its hidden state while the window fills, then re-runs over the
    last history_len frames; the GPT keeps at most history_len frames."""
    for name in ("DeterministicDecoder", "GPTDecoder"):
        head = build(name).eval()
        frames, mask, states = torch.randn(1, 5, 4, 16), torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 5)
        for t in range(5):
            head.predict_action(frames[:, t], states, mask)
            assert len(head.history_memory) == min(t + 1, 3)
        if name == "DeterministicDecoder":
            assert head.hidden_state is None  # refreshed from the window once it was full
        head.reset()
        assert head.history_memory == [] and getattr(head, "hidden_state", None) is None
        head.predict_action(frames[:, 0], states, mask)
        with pytest.raises(DataError, match="call reset"):
            head.predict_action(frames[:2, 0].expand(2, -1, -1), states.expand(2, -1), mask.expand(2, -1))


def test_loss_is_huber_on_the_arm_plus_weighted_bce_on_the_gripper(build):
    head = build("DeterministicDecoder", gripper_loss_weight=0.5)
    feats, mask = torch.randn(2, 3, 4, 16), torch.ones(2, 3, 4, dtype=torch.bool)
    states = torch.randn(2, 3, 5)
    actions = torch.randn(2, 2, 4)
    actions[..., 3] = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    action_masks = torch.tensor([[True, True], [True, False]])
    head.eval()
    out = head(feats, states, mask, actions, action_masks)
    hidden = head.rnn(torch.stack([f.amax(dim=1) for f in feats.unbind(1)], dim=1))[0][:, -1]  # max-pool, LSTM, last
    arm = head.actions(hidden).view(2, 2, 3)
    prob = head.gripper(hidden).view(2, 2)
    valid = [(0, 0), (0, 1), (1, 0)]
    arm_loss = sum(F.huber_loss(arm[b, t], actions[b, t, :3]) for b, t in valid) / 3
    grip_loss = sum(F.binary_cross_entropy(prob[b, t], (actions[b, t, 3] > 0).float()) for b, t in valid) / 3
    torch.testing.assert_close(out["loss"], arm_loss + 0.5 * grip_loss)
    assert float(out["loss_weight"]) == 3
    torch.testing.assert_close(out["pred_actions"][..., 3], 2 * prob - 1)
    gripper = head.predict_action(feats, states, mask, obs_masks=torch.ones(2, 3, dtype=torch.bool))[..., 3]
    assert torch.equal(gripper, torch.where(prob > 0.5, 1.0, -1.0))


def test_parameter_names_are_the_references(build):
    names = {n: set(build(n, use_state=True).state_dict()) for n in HEADS}
    assert {"mlp.0.weight", "mlp.2.weight", "fc_state.mlp.0.weight", "actions.mlp.6.weight",
            "gripper.mlp.6.weight"} <= names["FCDecoder"]
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l1", "embed_arm_state.0.weight", "embed_gripper_state.0.weight",
            "embed_state.weight", "actions.mlp.0.weight", "gripper.mlp.0.weight"} <= names["DeterministicDecoder"]
    assert {"gpt.wpe.weight", "gpt.h.1.attn.c_attn.weight", "fc.weight", "fc_state.mlp.0.weight",
            "actions.mlp.0.weight", "gripper.mlp.0.weight"} <= names["GPTDecoder"]


def test_a_window_of_the_wrong_length_is_a_clear_error(build):
    head = build("GPTDecoder")
    with pytest.raises(DataError, match="window_size=3 but the batch has 2 frames"):
        head(torch.randn(1, 2, 4, 16), torch.zeros(1, 2, 5), torch.ones(1, 2, 4, dtype=torch.bool),
             torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(DataError, match=r"the actions have 3 dims; set out_features to the arm dims"):
        head(torch.randn(1, 4, 16), torch.zeros(1, 5), torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 2, 3),
             torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(DataError, match="multiple of n_head"):
        build("GPTDecoder", hidden_size=15)
