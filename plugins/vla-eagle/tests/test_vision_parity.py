"""The vision path (SigLIP -> pixel shuffle -> mlp1) against transformers' SiglipVisionModel
plus Eagle's pixel shuffle (conftest.eagle_pixel_shuffle) and connector computed here
from the equations, with the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import SiglipVisionConfig, SiglipVisionModel


def reference_connector(x: torch.Tensor, mlp1: torch.nn.Module, layers: int) -> torch.Tensor:
    """Eagle's mlp1 from its weights: LayerNorm, Linear, GELU (erf), Linear; or one Linear."""
    p = dict(mlp1.named_parameters())
    if layers == 1:
        return F.linear(x, p["0.weight"], p["0.bias"])
    x = F.layer_norm(x, x.shape[-1:], p["0.weight"], p["0.bias"], eps=1e-5)
    x = F.gelu(F.linear(x, p["1.weight"], p["1.bias"]))
    return F.linear(x, p["3.weight"], p["3.bias"])


VARIANTS = {
    # GR00T N1.5: last SigLIP layer, every patch, one Linear.
    "groot_n15": {"use_pixel_shuffle": False, "mlp_connector_layers": 1, "vision_select_layer": -1},
    # Eagle 2.5's own default connector: 2x2 pixel shuffle, LayerNorm-Linear-GELU-Linear.
    "eagle25": {"use_pixel_shuffle": True, "mlp_connector_layers": 2, "vision_select_layer": -1},
    # An earlier SigLIP layer (no post-norm), shuffled, one Linear.
    "layer_minus_2": {"use_pixel_shuffle": True, "mlp_connector_layers": 1, "vision_select_layer": -2},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_vision_path_matches_siglip_plus_reference_connector(
    variant: str, make_backbone, tiny_kwargs, reference_pixel_shuffle
) -> None:
    options = VARIANTS[variant]
    backbone = make_backbone(**options)
    siglip = SiglipVisionModel(SiglipVisionConfig(**tiny_kwargs()["vision_config"])).eval()
    siglip.load_state_dict(backbone.eagle_model.vision_model.vision_model.state_dict())  # strict
    pixels = torch.randn(3, 3, 28, 28, generator=torch.Generator().manual_seed(1))

    with torch.no_grad():
        out = siglip(pixel_values=pixels, output_hidden_states=True)
        select = options["vision_select_layer"]
        patches = out.last_hidden_state if select == -1 else out.hidden_states[select]
        if options["use_pixel_shuffle"]:
            patches = reference_pixel_shuffle(patches.contiguous(), 0.5)
        expected = reference_connector(patches, backbone.eagle_model.mlp1, options["mlp_connector_layers"])
        ours = backbone.eagle_model.extract_feature(pixels)

    tokens = 4 if options["use_pixel_shuffle"] else 16
    assert ours.shape == (3, tokens, 48) and backbone.tokens_per_image == tokens
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_mlp1_key_layout(make_backbone) -> None:
    two = make_backbone(use_pixel_shuffle=True, mlp_connector_layers=2)
    assert {k: tuple(v.shape) for k, v in two.eagle_model.mlp1.state_dict().items()} == {
        "0.weight": (128,), "0.bias": (128,),          # LayerNorm(32 * 2^2)
        "1.weight": (48, 128), "1.bias": (48,),       # Linear(128 -> 48)
        "3.weight": (48, 48), "3.bias": (48,),        # Linear(48 -> 48)
    }
    one = make_backbone()
    assert {k: tuple(v.shape) for k, v in one.eagle_model.mlp1.state_dict().items()} == {
        "0.weight": (48, 32), "0.bias": (48,),
    }
