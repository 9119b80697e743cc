"""The language path against transformers' causal LM truncated the way GR00T truncates it
(`while len(layers) > select_layer: layers.pop(-1)`), for the same inputs_embeds."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM


def truncated_reference(model_type: str, text_config: dict, select_layer: int, seed: int) -> torch.nn.Module:
    """A full-depth transformers LM with random weights, cut like Isaac-GR00T's EagleBackbone."""
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **text_config)).eval()
    while len(lm.model.layers) > select_layer:
        lm.model.layers.pop(-1)
    return lm


@pytest.mark.parametrize("model_type", ["qwen3", "qwen2"])
def test_language_path_matches_truncated_reference(model_type: str, make_backbone, tiny_kwargs) -> None:
    text_config = dict(tiny_kwargs()["text_config"])
    if model_type == "qwen2":
        text_config.pop("head_dim")
    reference = truncated_reference(model_type, text_config, select_layer=2, seed=3)
    backbone = make_backbone(text_model_type=model_type, text_config=text_config)
    backbone.eagle_model.language_model.load_state_dict(reference.state_dict())  # strict: same names

    g = torch.Generator().manual_seed(4)
    embeds = torch.randn(3, 9, 48, generator=g)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, :3] = False  # left padding, as GR00T's tokenizer pads
    mask[2, -2:] = False  # right padding
    with torch.no_grad():
        ours = backbone.eagle_model.language_features(embeds, mask)
        expected = reference.model(inputs_embeds=embeds, attention_mask=mask.long()).last_hidden_state
    assert ours.shape == (3, 9, 48)
    torch.testing.assert_close(ours[mask], expected[mask], rtol=1e-5, atol=1e-5)
    assert len(backbone.eagle_model.language_model.model.layers) == 2


def test_features_are_the_normed_output_of_the_last_kept_layer(make_backbone) -> None:
    # GR00T reads hidden_states[select_layer] of the truncated model: with transformers 4.51
    # that last entry is norm(output of layer select_layer). Check the composition by hand.
    backbone = make_backbone()
    decoder = backbone.eagle_model.language_model.model
    embeds = torch.randn(2, 5, 48, generator=torch.Generator().manual_seed(5))
    mask = torch.ones(2, 5, dtype=torch.bool)
    captured: list[torch.Tensor] = []
    hook = decoder.layers[1].register_forward_hook(
        lambda module, args, out: captured.append(out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            ours = backbone.eagle_model.language_features(embeds, mask)
    finally:
        hook.remove()
    torch.testing.assert_close(ours, decoder.norm(captured[0]), rtol=1e-6, atol=1e-6)
