"""pi0.5: time only through adaRMS, the state as discrete prefix tokens, and it learns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from vla_paligemma.adarms import AdaptiveRMSNorm
from vla_paligemma.pi05 import PI05FlowMatching
from vla_paligemma.state_tokens import discretize_state

import vla_core
from vla_core.errors import ConfigError


@pytest.fixture
def pi05(tiny_vla_spec: Any, perturb: Any) -> PI05FlowMatching:
    torch.manual_seed(0)
    return perturb(vla_core.build_vla(tiny_vla_spec("PI05FlowMatching")), seed=3)


def _velocity(model: PI05FlowMatching, inputs: dict[str, torch.Tensor], timestep: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(**dict(inputs, timestep=timestep))["velocity"]


def test_time_enters_only_through_adarms(pi05: PI05FlowMatching, pi0_inputs: dict) -> None:
    # No time concatenation: the suffix embeddings are the same at any time, and there is
    # no action/time MLP and no state token.
    x = pi0_inputs["noise"]
    a = pi05.embed_suffix(pi0_inputs["states"], x, torch.tensor([0.1, 0.1]))
    b = pi05.embed_suffix(pi0_inputs["states"], x, torch.tensor([0.9, 0.9]))
    assert torch.equal(a.embeds, b.embeds) and a.embeds.shape == (2, 4, 48)
    assert not torch.allclose(a.cond, b.cond)
    names = {name for name, _ in pi05.named_parameters()}
    assert not any(n.startswith(("action_time_mlp", "state_proj")) for n in names)
    assert all(isinstance(layer.input_layernorm, AdaptiveRMSNorm) for layer in pi05.llm_expert.layers)
    assert "llm_expert.layers.0.input_layernorm.dense.weight" in names and "llm_expert.norm.dense.bias" in names

    # The velocity at fixed noisy actions x_t depends on t; with the time MLP zeroed it no longer does.
    prefix = pi05.embed_prefix(pi0_inputs["images"], pi0_inputs["img_masks"], pi0_inputs["lang_tokens"],
                               pi0_inputs["lang_masks"], pi0_inputs["states"])

    def velocity(t: float) -> torch.Tensor:
        with torch.no_grad():
            return pi05.velocity(*prefix, pi0_inputs["states"], x, torch.full((2,), t))

    before = velocity(0.2)
    assert not torch.allclose(before, velocity(0.9), atol=1e-4)
    with torch.no_grad():
        pi05.time_mlp_out.weight.zero_()
        pi05.time_mlp_out.bias.zero_()
    after = velocity(0.2)
    assert not torch.allclose(before, after, atol=1e-4)  # zeroing it changes the outputs...
    torch.testing.assert_close(after, velocity(0.9), atol=0, rtol=0)  # ...and time has no other way in


def test_discretize_state_matches_numpy_digitize() -> None:
    values = torch.tensor([[-1.5, -1.0, -0.999, -0.5, 0.0, 0.3, 0.9921875, 0.999, 1.0, 2.0]])
    expected = np.digitize(values.numpy(), bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
    expected = np.clip(expected, 0, 255)
    assert discretize_state(values).tolist() == expected.tolist()


def test_by_default_the_state_is_read_from_the_prompt_only(pi05: PI05FlowMatching, pi0_inputs: dict) -> None:
    # openpi: the processor writes the state bins into the prompt text; the prefix is images + prompt tokens.
    assert pi05.discrete_state_input == "prompt"
    args = [pi0_inputs[k] for k in ("images", "img_masks", "lang_tokens", "lang_masks")]
    prefix, mask = pi05.embed_prefix(*args, pi0_inputs["states"])
    expected, expected_mask = pi05.vlm_backbone.embed_prefix(*args)
    torch.testing.assert_close(prefix, expected, atol=0, rtol=0)
    assert torch.equal(mask, expected_mask)
    other_state = dict(pi0_inputs, states=-pi0_inputs["states"])
    torch.testing.assert_close(_velocity(pi05, other_state, pi0_inputs["timestep"]),
                               _velocity(pi05, pi0_inputs, pi0_inputs["timestep"]), atol=0, rtol=0)


def test_prompt_state_with_vla_processor_is_a_config_error(tiny_vla_spec: Any) -> None:
    spec = tiny_vla_spec("PI05FlowMatching", processor={"type": "VLAProcessor", "tokenizer": "word"})
    with pytest.raises(ConfigError, match=r"model\.discrete_state_input: .*OpenPIProcessor"):
        vla_core.build_vla(spec)
    spec["discrete_state_input"] = "token_ids"
    assert vla_core.build_vla(spec).discrete_state_input == "token_ids"


def test_token_ids_variant_puts_discrete_tokens_in_the_prefix(
    tiny_vla_spec: Any, perturb: Any, pi0_inputs: dict, tiny: dict
) -> None:
    torch.manual_seed(0)
    pi05 = perturb(vla_core.build_vla(tiny_vla_spec("PI05FlowMatching", discrete_state_input="token_ids")), seed=3)
    states = pi0_inputs["states"]
    ids = pi05.state_tokens(states)
    assert pi05.state_token_offset == tiny["vocab"] - 256
    assert ids.shape == (2, tiny["state_dim"]) and ids.min() >= pi05.state_token_offset
    prefix, mask = pi05.embed_prefix(pi0_inputs["images"], pi0_inputs["img_masks"], pi0_inputs["lang_tokens"],
                                     pi0_inputs["lang_masks"], states)
    text_len = pi0_inputs["lang_tokens"].shape[1]
    assert prefix.shape[1] == 2 * tiny["tokens_per_image"] + text_len + tiny["state_dim"]
    torch.testing.assert_close(prefix[:, -tiny["state_dim"]:], pi05.vlm_backbone.embed_language(ids))
    assert mask[:, -tiny["state_dim"]:].all()

    # Same bins -> same prediction; another bin -> a different one: the state is read as tokens only.
    base = _velocity(pi05, pi0_inputs, pi0_inputs["timestep"])
    bin_width = 2.0 / 256
    centred = -1 + (discretize_state(states).float() + 0.5) * bin_width
    same_bins = dict(pi0_inputs, states=centred + 0.3 * bin_width)
    torch.testing.assert_close(_velocity(pi05, same_bins, pi0_inputs["timestep"]), base, atol=0, rtol=0)
    other_bin = dict(pi0_inputs, states=centred.clone())
    other_bin["states"][:, 0] += bin_width
    assert not torch.allclose(_velocity(pi05, other_bin, pi0_inputs["timestep"]), base)


def test_cached_sampling_equals_recomputing_the_prefix(pi05: PI05FlowMatching, pi0_inputs: dict) -> None:
    args = [pi0_inputs[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")]
    cached = pi05.predict_action(*args, noise=pi0_inputs["noise"], num_steps=4)
    recomputed = pi05.predict_action(*args, noise=pi0_inputs["noise"], num_steps=4, use_prefix_cache=False)
    assert cached.shape == (2, 4, 5)
    torch.testing.assert_close(cached, recomputed, atol=1e-5, rtol=0)
    pi05.fuse_expert_weights = False
    torch.testing.assert_close(pi05.predict_action(*args, noise=pi0_inputs["noise"], num_steps=4), cached,
                               atol=1e-5, rtol=0)
    pi05.fuse_expert_weights = True
    # The fused expert weights of the cached path follow in-place updates (as an optimizer makes).
    with torch.no_grad():
        pi05.llm_expert.layers[0].mlp.up_proj.weight.mul_(1.5)
        pi05.llm_expert.layers[1].self_attn.k_proj.weight.add_(0.1)
    updated = pi05.predict_action(*args, noise=pi0_inputs["noise"], num_steps=4)
    assert not torch.allclose(updated, cached, atol=1e-4)
    torch.testing.assert_close(
        updated, pi05.predict_action(*args, noise=pi0_inputs["noise"], num_steps=4, use_prefix_cache=False),
        atol=1e-5, rtol=0,
    )


def test_overfits_one_batch(tiny_vla_spec: Any, pi0_inputs: dict) -> None:
    torch.manual_seed(0)
    model = vla_core.build_vla(tiny_vla_spec("PI05FlowMatching"))
    batch = {k: pi0_inputs[k] for k in ("lang_tokens", "lang_masks", "states", "actions")}
    batch |= {"images": pi0_inputs["images"][:, :1], "img_masks": pi0_inputs["img_masks"][:, :1]}
    g = torch.Generator().manual_seed(5)
    eval_noise = torch.randn(4, 2, 4, 5, generator=g)
    eval_time = torch.rand(4, 2, generator=g) * 0.9 + 0.05

    def eval_loss() -> float:
        with torch.no_grad():
            return sum(model(**batch, noise=eval_noise[i], timestep=eval_time[i])["loss"].item() for i in range(4)) / 4

    initial = eval_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0, fused=True)
    for step in range(30):  # the batch is the observations, the actions and 4 (noise, time) draws
        loss = model(**batch, noise=eval_noise[step % 4], timestep=eval_time[step % 4])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = eval_loss()
    assert final < 0.25 * initial, (initial, final)


def test_expert_without_adarms_is_rejected(tiny_vla_spec: Any) -> None:
    spec = tiny_vla_spec("PI05FlowMatching")
    spec["llm_expert"].pop("adarms_cond_dim")
    with pytest.raises(ConfigError, match=r"model\.llm_expert\.adarms_cond_dim: is None"):
        vla_core.build_vla(spec)
