"""Parity with transformers' PI0 (the reference): same weights, same inputs and noise, same numbers.

transformers computes the time embedding in float32 and steps through the exact decimal times
1, 0.8, ...; openpi (our default) in float64 and with times accumulated in float32. The
parity tests build ours with transformers' numerics (`time_embedding_dtype: float32`,
`step_schedule: exact`); `test_default_numerics_follow_openpi` runs openpi's schedule and
float64 embedding around transformers' velocity and compares our default with that.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from transformers import PI0ForConditionalGeneration
from vla_paligemma import transformers_pi0
from vla_paligemma.pi0 import PI0FlowMatching
from vla_paligemma.transformers_pi0 import checkpoint_keys, openpi_name_mapping

import vla_core
from vla_core.errors import CheckpointError


@pytest.fixture(scope="module")
def reference(pi0_reference: tuple[PI0ForConditionalGeneration, Path]) -> tuple[PI0ForConditionalGeneration, Path]:
    return pi0_reference


@pytest.fixture(scope="module")
def ours(reference: tuple[PI0ForConditionalGeneration, Path]) -> PI0FlowMatching:
    return vla_core.load_pretrained(reference[1])


@pytest.fixture(scope="module")
def ours_transformers_numerics(reference: tuple[PI0ForConditionalGeneration, Path]) -> PI0FlowMatching:
    """The same checkpoint with transformers' float32 time embedding and exact decimal step times."""
    directory = reference[1]
    spec = transformers_pi0.pi0_spec_from_transformers_config(json.loads((directory / "config.json").read_text()))
    spec |= {"pretrained_name_or_path": str(directory), "time_embedding_dtype": "float32", "step_schedule": "exact",
             "name_mapping": transformers_pi0.transformers_pi0_mapping(checkpoint_keys(directory))}
    return vla_core.build_vla(spec).eval()


def test_load_pretrained_maps_every_tensor(reference: tuple[Any, Path], ours: PI0FlowMatching) -> None:
    model, directory = reference
    assert isinstance(ours, PI0FlowMatching) and not ours.training
    report = ours.load_report
    assert report.ok and report.ignored == 0
    assert len(report.loaded) == len(checkpoint_keys(directory)) == len(model.state_dict())
    ref_state, our_state = model.state_dict(), ours.state_dict()
    vt, lm = "vision_tower.encoder.layers.1.mlp.fc2.weight", "language_model.layers.1.input_layernorm.weight"
    pairs = {
        f"model.vlm.{vt}": f"vlm_backbone.{vt}",
        f"model.vlm.{lm}": f"vlm_backbone.{lm}",
        "model.dit.embed_tokens.weight": "llm_expert.embed_tokens.weight",
        "model.dit.layers.0.self_attn.k_proj.weight": "llm_expert.layers.0.self_attn.k_proj.weight",
        "embed_action_time.action_time_mlp_in.weight": "action_time_mlp_in.weight",
        "action_out_proj.bias": "action_out_proj.bias",
    }
    for theirs, mine in pairs.items():
        assert torch.equal(ref_state[theirs], our_state[mine]), mine


@pytest.mark.parametrize("use_prefix_cache", [True, False])
def test_predict_action_matches_sample_actions(
    reference: tuple[Any, Path], ours_transformers_numerics: PI0FlowMatching, pi0_inputs: dict, reference_inputs: Any,
    use_prefix_cache: bool,
) -> None:
    model, _ = reference
    ref = reference_inputs(pi0_inputs)
    with torch.no_grad():
        expected = model.sample_actions(**ref, num_steps=5)
    got = ours_transformers_numerics.predict_action(
        pi0_inputs["images"], pi0_inputs["lang_tokens"], pi0_inputs["lang_masks"], pi0_inputs["img_masks"],
        pi0_inputs["states"], noise=pi0_inputs["noise"], num_steps=5, use_prefix_cache=use_prefix_cache,
    )
    assert got.shape == expected.shape == (2, 4, 5)
    assert expected.abs().max() > 0.5  # a real trajectory, not a degenerate one
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def openpi_sinusoid(time: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """openpi `models_pytorch/pi0_pytorch.py` create_sinusoidal_pos_embedding (float64), cast to the time's dtype."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction
    sin_input = (1.0 / period * 2 * math.pi)[None, :] * time[:, None]
    return torch.cat([torch.sin(sin_input), torch.cos(sin_input)], dim=1).type(time.dtype)


@pytest.mark.parametrize("num_steps", [10, 7])
def test_default_numerics_follow_openpi(
    reference: tuple[Any, Path], ours: PI0FlowMatching, pi0_inputs: dict, reference_inputs: Any,
    monkeypatch: pytest.MonkeyPatch, num_steps: int,
) -> None:
    """openpi's `PI0Pytorch.sample_actions` loop (t float32 from 1.0, `t += dt` while t >= -dt / 2) and its float64
    time embedding, around transformers' PI0 velocity, equal our default sampler."""
    model, _ = reference
    embeddings = model.embed_action_time.sinusoid_embeds
    width, periods = model.config.dit_config.hidden_size, (model.config.min_period, model.config.max_period)
    monkeypatch.setattr(embeddings, "forward", lambda t: openpi_sinusoid(t, width, *periods))
    ref = reference_inputs(pi0_inputs)
    x_t = ref.pop("noise")
    dt = torch.tensor(-1.0 / num_steps, dtype=torch.float32)
    time = torch.tensor(1.0, dtype=torch.float32)
    steps = 0
    with torch.no_grad():
        while time >= -dt / 2:
            x_t = x_t + dt * model(**ref, noise=x_t, timestep=time.expand(x_t.shape[0])).logits
            time += dt
            steps += 1
    assert steps == num_steps
    got = ours.predict_action(
        pi0_inputs["images"], pi0_inputs["lang_tokens"], pi0_inputs["lang_masks"], pi0_inputs["img_masks"],
        pi0_inputs["states"], noise=pi0_inputs["noise"], num_steps=num_steps,
    )
    torch.testing.assert_close(got, x_t, atol=1e-6, rtol=0)
    monkeypatch.undo()  # transformers' own float32 embedding and decimal times differ by more: the options matter
    with torch.no_grad():
        transformers_actions = model.sample_actions(**reference_inputs(pi0_inputs), num_steps=num_steps)
    assert (got - transformers_actions).abs().max() > 1e-6


def test_training_loss_matches_reference_forward(
    reference: tuple[Any, Path], ours_transformers_numerics: PI0FlowMatching, pi0_inputs: dict, reference_inputs: Any
) -> None:
    model, _ = reference
    ref = reference_inputs(pi0_inputs)
    with torch.no_grad():
        expected = model(**ref, actions=pi0_inputs["actions"], timestep=pi0_inputs["timestep"])
    out = ours_transformers_numerics(**pi0_inputs, action_masks=None)
    assert abs(out["loss"].item() - expected.loss.item()) < 1e-5
    torch.testing.assert_close(out["velocity"], expected.logits, atol=1e-5, rtol=0)


def test_loss_skips_padded_steps_and_reaches_both_models(ours: PI0FlowMatching, pi0_inputs: dict) -> None:
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, -1] = False
    out = ours(**pi0_inputs, action_masks=mask)
    error = (out["velocity"] - (pi0_inputs["noise"] - pi0_inputs["actions"])).pow(2)
    assert torch.allclose(out["loss"], error[mask].mean(), atol=1e-6)
    assert not torch.allclose(out["loss"], error.mean())  # (a padded step still feeds the attention, as in pi0)
    out["loss"].backward()
    for name in (
        "vlm_backbone.vision_tower.encoder.layers.0.mlp.fc1.weight",
        "vlm_backbone.language_model.layers.0.mlp.up_proj.weight",
        "llm_expert.layers.1.mlp.down_proj.weight",
        "state_proj.weight",
        "action_time_mlp_in.weight",
    ):
        grad = ours.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    ours.zero_grad()


def test_in_memory_key_layout_loads_too(reference: tuple[Any, Path], tmp_path: Path, pi0_inputs: dict) -> None:
    """A state_dict() written as is (model.vlm.*, embed_action_time.*) is recognised as well."""
    model, directory = reference
    shutil.copy(directory / "config.json", tmp_path / "config.json")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = vla_core.load_pretrained(tmp_path)
    assert loaded.load_report.ok and len(loaded.load_report.loaded) == len(model.state_dict())
    with torch.no_grad():
        a = loaded(**pi0_inputs)["velocity"]
    assert torch.isfinite(a).all()


def test_wrong_hidden_size_names_the_key_and_both_shapes(reference: tuple[Any, Path], tmp_path: Path) -> None:
    _, directory = reference
    for file in directory.iterdir():
        shutil.copy(file, tmp_path / file.name)
    config = json.loads((tmp_path / "config.json").read_text())
    config["dit_config"]["hidden_size"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as excinfo:
        vla_core.load_pretrained(tmp_path)
    message = str(excinfo.value)
    assert "llm_expert.layers.0.self_attn.q_proj.weight: model [64, 32] vs checkpoint [64, 48]" in message
    assert "mis-shaped" in message


def test_our_save_and_load_round_trip(ours: PI0FlowMatching, pi0_inputs: dict, tmp_path: Path) -> None:
    ours.save_pretrained(tmp_path / "ckpt")
    again = vla_core.load_pretrained(tmp_path / "ckpt")
    assert type(again) is PI0FlowMatching and again.load_report.ok
    args = [pi0_inputs[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")]
    torch.testing.assert_close(
        again.predict_action(*args, noise=pi0_inputs["noise"]), ours.predict_action(*args, noise=pi0_inputs["noise"]),
        atol=0, rtol=0,
    )


@pytest.mark.parametrize("lerobot", [False, True])
def test_openpi_layout_loads_through_its_name_mapping(
    reference: tuple[Any, Path], ours: PI0FlowMatching, tmp_path: Path, pi0_inputs: dict, lerobot: bool
) -> None:
    """openpi's PI0Pytorch names (transformers 4.53 PaliGemma / Gemma inside `paligemma_with_expert`),
    written from the reference's tensors; LeRobot's PI0Policy puts them under `model.`."""
    model, directory = reference
    root = "model." if lerobot else ""
    renames = {
        "model.vlm.vision_tower.": f"{root}paligemma_with_expert.paligemma.model.vision_tower.vision_model.",
        "model.vlm.multi_modal_projector.": f"{root}paligemma_with_expert.paligemma.model.multi_modal_projector.",
        "model.vlm.language_model.": f"{root}paligemma_with_expert.paligemma.model.language_model.",
        "model.dit.": f"{root}paligemma_with_expert.gemma_expert.model.",
        "embed_action_time.": root,
        "action_out_proj.": f"{root}action_out_proj.",
    }
    state = {}
    for key, tensor in model.state_dict().items():
        if key == "model.dit.embed_tokens.weight":
            continue  # openpi's expert has no token embedding
        prefix = next(p for p in renames if key.startswith(p))
        state[renames[prefix] + key[len(prefix):]] = tensor.contiguous()
    save_file(state, str(tmp_path / "model.safetensors"))
    spec = transformers_pi0.pi0_spec_from_transformers_config(json.loads((directory / "config.json").read_text()))
    spec["llm_expert"]["vocab_size"] = 0
    spec |= {"pretrained_name_or_path": str(tmp_path), "name_mapping": openpi_name_mapping(lerobot=lerobot)}
    loaded = vla_core.build_vla(spec)
    assert loaded.load_report.ok and loaded.load_report.ignored == 0
    with torch.no_grad():
        torch.testing.assert_close(loaded(**pi0_inputs)["velocity"], ours(**pi0_inputs)["velocity"], atol=0, rtol=0)


def test_full_size_defaults_have_transformers_pi0_shapes() -> None:
    """Built on the meta device (no memory): the pi0 preset + default expert has every tensor of
    transformers' default PI0Config (lerobot/pi0_base), same names after mapping, same shapes."""
    from transformers import PI0Config
    from vla_paligemma.transformers_pi0 import TRANSFORMERS_PI0_MEMORY_NAME_MAPPING

    from vla_core.models.weights import map_checkpoint_keys

    with torch.device("meta"):
        reference = PI0ForConditionalGeneration(PI0Config())
        ours = vla_core.build_vla({
            "type": "PI0FlowMatching",
            "vlm_backbone": {"type": "PaliGemma", "vlm_backbone_id": "pi0_paligemma_3b_224"},
            "llm_expert": {"type": "GemmaLLMBackbone", "vocab_size": 257152},  # transformers keeps the table
        })
    theirs, ignored = map_checkpoint_keys(reference.state_dict(), TRANSFORMERS_PI0_MEMORY_NAME_MAPPING)
    mine = ours.state_dict()
    assert ignored == 0 and set(theirs) == set(mine)
    assert all(theirs[key].shape == mine[key].shape for key in mine)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
