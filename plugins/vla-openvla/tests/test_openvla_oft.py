"""OpenVLA-OFT against its reference computation (OFT's predict_action on transformers' LLaMA with
is_causal=False) and the L1 regression head against OFT's MLP-ResNet."""

from __future__ import annotations

import pytest
import torch

import vla_core
from vla_core import build_component
from vla_core.errors import ConfigError, VLAError
from vla_core.testing import check_action_head

OBS_KEYS = ("images", "lang_tokens", "lang_masks", "img_masks", "states")


def observation(batch):
    return {k: batch[k] for k in OBS_KEYS}


def test_l1_head_meets_the_head_contract():
    head = build_component("heads", {"type": "L1RegressionActionHead", "input_dim": 16, "hidden_dim": 24,
                                     "action_dim": 3, "chunk_size": 4})
    check_action_head(head, input_dim=16, state_dim=5, action_dim=3, chunk_size=4, seq_len=12)


def test_l1_head_computation_and_keys(ref):
    head = build_component("heads", {"type": "L1RegressionActionHead", "input_dim": 16, "hidden_dim": 24,
                                     "action_dim": 3, "chunk_size": 4})
    keys = set(head.state_dict())
    assert {"model.layer_norm1.weight", "model.fc1.weight", "model.mlp_resnet_blocks.1.ffn.0.weight",
            "model.mlp_resnet_blocks.1.ffn.1.weight", "model.layer_norm2.bias", "model.fc2.weight"} <= keys
    assert tuple(head.state_dict()["model.fc1.weight"].shape) == (24, 16 * 3)  # input_dim * ACTION_DIM
    hidden = torch.randn(2, 12, 16)
    expected = ref.reference_l1_head(head.state_dict(), hidden, chunk_size=4, prefix="model.")
    torch.testing.assert_close(head.predict_action(hidden, None, None), expected)
    actions = torch.randn(2, 4, 3)
    loss = head(hidden, None, None, actions, torch.ones(2, 4, dtype=torch.bool))["loss"]
    torch.testing.assert_close(loss, torch.nn.L1Loss()(expected, actions))  # OFT's loss when nothing is padded
    with pytest.raises(VLAError, match="chunk_size"):
        head.predict_action(torch.randn(2, 10, 16), None, None)
    with pytest.raises(VLAError, match="processor's chunk_size"):
        head(hidden, None, None, torch.randn(2, 3, 3), torch.ones(2, 3, dtype=torch.bool))


def test_predict_action_equals_ofts_reference_forward(ref, tiny_oft):
    lengths = [5, 8]
    batch = ref.prompt_batch(lengths, seed=11, n_cam=2)
    with torch.no_grad():
        hidden = tiny_oft.action_hidden_states(**observation(batch))
        actions = tiny_oft.predict_action(**observation(batch))
    assert hidden.shape == (2, 6, 64) and actions.shape == (2, 2, 3)
    state = tiny_oft.state_dict()
    for row, length in enumerate(lengths):
        expected = ref.reference_oft_action_hidden(state, batch["images"][row : row + 1],
                                                   batch["lang_tokens"][row : row + 1, :length],
                                                   batch["states"][row : row + 1], num_action_tokens=6, proprio_dim=5)
        torch.testing.assert_close(hidden[row : row + 1], expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(actions[row : row + 1], ref.reference_l1_head(state, expected, chunk_size=2),
                                   rtol=1e-4, atol=1e-4)


def test_unpadded_fast_path_equals_the_masked_path(ref, tiny_oft, monkeypatch):
    batch = observation(ref.prompt_batch([6, 6], seed=15))
    with torch.no_grad():
        fast = tiny_oft.action_hidden_states(**batch)  # SDPA with is_causal=False, no mask tensor
        monkeypatch.setattr(tiny_oft, "_bidirectional_fast_path", lambda *args: None)
        masked = tiny_oft.action_hidden_states(**batch)  # explicit all-valid 4D mask
    torch.testing.assert_close(fast, masked, rtol=1e-5, atol=1e-5)


def test_prompt_suffix_is_appended_where_missing(ref, tiny_oft):
    batch = observation(ref.prompt_batch([5, 7], seed=18))
    explicit = {**batch, "lang_tokens": torch.cat([batch["lang_tokens"], torch.zeros(2, 1, dtype=torch.long)], 1),
                "lang_masks": torch.cat([batch["lang_masks"], torch.zeros(2, 1, dtype=torch.bool)], 1)}
    for row, end in enumerate([5, 7]):
        explicit["lang_tokens"][row, end], explicit["lang_masks"][row, end] = 29, True
    try:
        tiny_oft.prompt_suffix_token_id = 29
        appended = tiny_oft.predict_action(**batch)
        already = tiny_oft.predict_action(**explicit)
    finally:
        tiny_oft.prompt_suffix_token_id = None
    expected = tiny_oft.predict_action(**explicit)
    torch.testing.assert_close(appended, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(already, expected, rtol=1e-5, atol=1e-5)


def test_a_masked_camera_counts_as_absent(ref, tiny_oft):
    two = observation(ref.prompt_batch([6, 6], seed=20, n_cam=2))
    two["img_masks"][0, 1] = False
    one = {**two, "images": two["images"][:1, :1], "img_masks": two["img_masks"][:1, :1],
           **{k: two[k][:1] for k in ("lang_tokens", "lang_masks", "states")}}
    torch.testing.assert_close(tiny_oft.predict_action(**two)[:1], tiny_oft.predict_action(**one),
                               rtol=1e-5, atol=1e-5)


def test_causal_prefix_keeps_the_prompt_causal(ref):
    torch.manual_seed(0)
    vla = vla_core.build_vla(ref.oft_spec(attention="causal_prefix")).eval()
    batch = ref.prompt_batch([6], seed=12)
    state = vla.state_dict()
    llm = ref.reference_llama(state)
    with torch.no_grad():
        hidden = vla.action_hidden_states(**observation(batch))
        patches = vla.encode_images(batch["images"], batch["img_masks"])[0]
        proprio = vla.proprio_projector(batch["states"][:, :5])[:, None]
        embeds = llm.get_input_embeddings()(batch["lang_tokens"])
        prefix = torch.cat([embeds[:, :1], patches, proprio, embeds[:, 1:]], dim=1)
        causal = llm.model(inputs_embeds=prefix).last_hidden_state  # plain causal LLaMA over the prompt
    # The first action state is read at the last prompt token, which sees no action token.
    torch.testing.assert_close(hidden[:, 0], causal[:, -1], rtol=1e-4, atol=1e-4)


def test_training_loss_is_ofts_l1_and_a_few_steps_lower_it(ref):
    torch.manual_seed(0)
    vla = vla_core.build_vla(ref.oft_spec()).train()
    batch = ref.prompt_batch([6, 7, 5, 7], seed=13)
    g = torch.Generator().manual_seed(14)
    actions = torch.rand(4, 2, 3, generator=g) * 2 - 1
    masks = torch.ones(4, 2, dtype=torch.bool)
    out = vla(**batch, actions=actions, action_masks=masks)
    with torch.no_grad():
        expected = ref.reference_l1_head(vla.state_dict(), vla.action_hidden_states(**observation(batch)), 2)
    torch.testing.assert_close(out["pred_actions"], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["loss"], torch.nn.L1Loss()(expected, actions), rtol=1e-5, atol=1e-5)

    optimizer = torch.optim.AdamW(vla.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = vla(**batch, actions=actions, action_masks=masks)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_bad_configs_and_inputs_are_explained(ref, tiny_oft):
    with pytest.raises(ConfigError, match="vla_head"):
        vla_core.build_vla({k: v for k, v in ref.oft_spec().items() if k != "vla_head"})
    with pytest.raises(ConfigError, match="chunk_size"):
        vla_core.build_vla(ref.oft_spec(chunk_size=3))
    with pytest.raises(ConfigError, match="out_dim"):
        vla_core.build_vla(ref.oft_spec(proprio_projector={"type": "PrismaticProjector", "in_dim": 5, "out_dim": 32}))
    batch = observation(ref.prompt_batch([5]))
    batch["states"] = batch["states"][:, :3]
    with pytest.raises(VLAError, match="states"):
        tiny_oft.predict_action(**batch)
