"""OpenVLA against a reference built from timm + transformers' LlamaForCausalLM (modeling_prismatic's forward)."""

from __future__ import annotations

import pytest
import torch

import vla_core
from vla_core.errors import ConfigError, VLAError

OBS_KEYS = ("images", "lang_tokens", "lang_masks", "img_masks", "states")


def observation(batch):
    return {k: batch[k] for k in OBS_KEYS}


def actions_for(batch_size: int, action_dim: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch_size, 1, action_dim, generator=g) * 2 - 1


@pytest.mark.parametrize("predict_stop_token", [False, True])
def test_loss_and_logits_equal_llama_for_causal_lm(ref, predict_stop_token):
    torch.manual_seed(0)
    vla = vla_core.build_vla(ref.openvla_spec(predict_stop_token=predict_stop_token)).eval()
    batch = ref.prompt_batch([7, 7])
    actions = actions_for(2)
    with torch.no_grad():
        out = vla(**batch, actions=actions, action_masks=torch.ones(2, 1, dtype=torch.bool))

    state = vla.state_dict()
    llm = ref.reference_llama(state)
    targets = ref.reference_encode(actions[:, 0])
    if predict_stop_token:
        targets = torch.cat([targets, torch.full((2, 1), 2)], dim=1)
    input_ids = torch.cat([batch["lang_tokens"], targets], dim=1)
    embeds = ref.reference_multimodal_embeds(state, llm, batch["images"][:, 0], input_ids)
    labels = torch.full(embeds.shape[:2], -100)
    labels[:, -targets.shape[1]:] = targets
    with torch.no_grad():
        expected = llm(inputs_embeds=embeds, attention_mask=torch.ones(labels.shape, dtype=torch.long), labels=labels)

    torch.testing.assert_close(out["loss"], expected.loss, rtol=1e-5, atol=1e-5)
    k = targets.shape[1]
    expected_logits = expected.logits[:, -k - 1 : -1]  # position p predicts token p + 1
    torch.testing.assert_close(out["action_logits"], expected_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["pred_actions"][:, 0], ref.reference_decode(expected_logits.argmax(-1)[:, :4]))


def test_padded_rows_give_the_loss_of_each_row_alone(ref, tiny_openvla):
    batch = ref.prompt_batch([5, 9, 7], seed=3)
    actions = actions_for(3, seed=4)
    with torch.no_grad():
        loss = tiny_openvla(**batch, actions=actions, action_masks=torch.ones(3, 1, dtype=torch.bool))["loss"]
        alone = []
        for row, length in enumerate([5, 9, 7]):
            single = {k: v[row : row + 1] for k, v in batch.items()}
            single["lang_tokens"] = single["lang_tokens"][:, :length]
            single["lang_masks"] = single["lang_masks"][:, :length]
            alone.append(tiny_openvla(**single, actions=actions[row : row + 1],
                                      action_masks=torch.ones(1, 1, dtype=torch.bool))["loss"])
    torch.testing.assert_close(loss, torch.stack(alone).mean(), rtol=1e-5, atol=1e-5)


def test_rows_without_a_valid_step_carry_no_loss(ref, tiny_openvla):
    batch = ref.prompt_batch([6, 6], seed=5)
    actions = actions_for(2, seed=6)
    masks = torch.tensor([[True], [False]])
    with torch.no_grad():
        both = tiny_openvla(**batch, actions=actions, action_masks=masks)["loss"]
        first = tiny_openvla(**{k: v[:1] for k, v in batch.items()}, actions=actions[:1], action_masks=masks[:1])
    torch.testing.assert_close(both, first["loss"])


def test_a_masked_camera_counts_as_absent(ref, tiny_openvla):
    """img_masks False removes that camera's patches: same loss and actions as without the camera."""
    two = ref.prompt_batch([6, 8], seed=19, n_cam=2)
    two["img_masks"][0, 1] = False
    one = {**two, "images": two["images"][:, :1], "img_masks": two["img_masks"][:, :1]}
    actions, masks = actions_for(2, seed=20), torch.ones(2, 1, dtype=torch.bool)
    with torch.no_grad():
        got = tiny_openvla(**two, actions=actions, action_masks=masks)["action_logits"][0]
        expected = tiny_openvla(**one, actions=actions, action_masks=masks)["action_logits"][0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_openvla.predict_action(**observation(two))[0],
                               tiny_openvla.predict_action(**observation(one))[0], rtol=0, atol=0)


def test_predict_action_equals_transformers_greedy_generate(ref, tiny_openvla):
    lengths = [6, 9]
    batch = ref.prompt_batch(lengths, seed=7)
    with_cache = tiny_openvla.predict_action(**observation(batch))
    without_cache = tiny_openvla.predict_action(**observation(batch), use_kv_cache=False)
    assert with_cache.shape == (2, 1, 4)
    torch.testing.assert_close(with_cache, without_cache, rtol=0, atol=0)

    state = tiny_openvla.state_dict()
    llm = ref.reference_llama(state)
    llm.generation_config.eos_token_id = None  # OpenVLA reads exactly action_dim new tokens
    for row, length in enumerate(lengths):
        embeds = ref.reference_multimodal_embeds(state, llm, batch["images"][row : row + 1, 0],
                                                 batch["lang_tokens"][row : row + 1, :length])
        with torch.no_grad():
            ones = torch.ones(embeds.shape[:2], dtype=torch.long)
            generated = llm.generate(inputs_embeds=embeds, attention_mask=ones, max_new_tokens=4, do_sample=False,
                                     pad_token_id=0)
        torch.testing.assert_close(with_cache[row, 0], ref.reference_decode(generated[0, -4:]), rtol=0, atol=0)


def test_a_few_training_steps_lower_the_loss(ref):
    torch.manual_seed(0)
    vla = vla_core.build_vla(ref.openvla_spec()).train()
    batch = ref.prompt_batch([6, 8, 7, 8], seed=8)
    actions = actions_for(4, seed=9)
    optimizer = torch.optim.AdamW(vla.parameters(), lr=5e-3)
    losses = []
    for _ in range(6):
        loss = vla(**batch, actions=actions, action_masks=torch.ones(4, 1, dtype=torch.bool))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses  # 5.98 -> 3.85 here


def test_save_and_load_pretrained_round_trip(ref, tiny_openvla, tmp_path):
    tiny_openvla.save_pretrained(tmp_path / "ckpt")
    loaded = vla_core.load_pretrained(tmp_path / "ckpt")
    for key, value in tiny_openvla.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    batch = observation(ref.prompt_batch([5, 6], seed=10))
    torch.testing.assert_close(loaded.predict_action(**batch), tiny_openvla.predict_action(**batch), rtol=0, atol=0)


def test_bad_configs_and_inputs_are_explained(ref, tiny_openvla):
    with pytest.raises(ConfigError, match="projector"):
        vla_core.build_vla({k: v for k, v in ref.openvla_spec().items() if k != "projector"})
    with pytest.raises(ConfigError, match="in_dim"):
        vla_core.build_vla(ref.openvla_spec(projector={"type": "PrismaticProjector", "in_dim": 50, "out_dim": 64}))
    with pytest.raises(ConfigError, match="vocab"):
        vla_core.build_vla(ref.openvla_spec(pad_to_multiple_of=200))
    batch = ref.prompt_batch([5, 6])
    batch["lang_masks"][0, 0] = False
    with pytest.raises(VLAError, match="BOS"):
        tiny_openvla.predict_action(**observation(batch))
    batch = ref.prompt_batch([5, 6])
    batch["images"] = batch["images"][:, 0]
    with pytest.raises(VLAError, match="N_cam"):
        tiny_openvla.predict_action(**observation(batch))


def with_suffix(batch, suffix: int, rows: list[int]):
    """The prompts of `rows` get `suffix` appended after their last valid token."""
    tokens = torch.cat([batch["lang_tokens"], torch.zeros_like(batch["lang_tokens"][:, :1])], dim=1)
    masks = torch.cat([batch["lang_masks"], torch.zeros_like(batch["lang_masks"][:, :1])], dim=1)
    for row in rows:
        end = int(batch["lang_masks"][row].sum())
        tokens[row, end], masks[row, end] = suffix, True
    return {**batch, "lang_tokens": tokens, "lang_masks": masks}


def test_prompt_suffix_is_appended_where_missing(ref, tiny_openvla):
    batch = ref.prompt_batch([5, 7], seed=16)
    actions, masks = actions_for(2, seed=17), torch.ones(2, 1, dtype=torch.bool)
    try:
        tiny_openvla.prompt_suffix_token_id = 29
        missing = tiny_openvla.predict_action(**observation(batch))
        partly = tiny_openvla.predict_action(**observation(with_suffix(batch, 29, rows=[1])))
        loss = tiny_openvla(**batch, actions=actions, action_masks=masks)["loss"]
        tiny_openvla.prompt_suffix_token_id = None
        explicit = with_suffix(batch, 29, rows=[0, 1])
        expected = tiny_openvla.predict_action(**observation(explicit))
        expected_loss = tiny_openvla(**explicit, actions=actions, action_masks=masks)["loss"]
    finally:
        tiny_openvla.prompt_suffix_token_id = None
    torch.testing.assert_close(missing, expected, rtol=0, atol=0)
    torch.testing.assert_close(partly, expected, rtol=0, atol=0)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)


def test_freeze_llm_backbone_freezes_the_language_model(ref):
    vla = vla_core.build_vla(ref.openvla_spec(freeze_llm_backbone=True))
    assert not any(p.requires_grad for p in vla.language_model.parameters())
    assert all(p.requires_grad for p in vla.projector.parameters())


def test_fsdp_units_are_llama_layers_and_vit_blocks(tiny_openvla):
    assert {t.__name__ for t in tiny_openvla.fsdp_unit_types()} == {"LlamaDecoderLayer", "Block"}
