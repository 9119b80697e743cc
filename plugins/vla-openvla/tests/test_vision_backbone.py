"""PrismaticVisionBackbone against timm: same weights, same images -> the same patch features."""

from __future__ import annotations

import pytest
import torch

from vla_core import build_component
from vla_core.errors import ConfigError, VLAError


@pytest.fixture(scope="module")
def fused(ref):
    torch.manual_seed(0)
    backbone = build_component("vision_backbones", ref.vision_spec()).eval()
    # Random LayerScale values, so a lost or misapplied scale would show in the features.
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if name.endswith("scale_factor"):
                param.uniform_(0.5, 1.5)
    return backbone


def test_fused_features_equal_concatenated_timm_intermediate_layers(fused, ref):
    images = torch.randn(2, 3, ref.IMAGE_SIZE, ref.IMAGE_SIZE)
    vits = ref.reference_featurizers(fused.state_dict(), prefix="")
    expected = ref.reference_patches(vits, images)
    with torch.no_grad():
        got = fused(images)
    assert got.shape == (2, 16, ref.VISION_DIM) == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_channel_stacked_input_feeds_each_featurizer_its_own_copy(fused, ref):
    dino_view, siglip_view = torch.randn(2, 3, 28, 28), torch.randn(2, 3, 28, 28)
    vits = ref.reference_featurizers(fused.state_dict(), prefix="")
    with torch.no_grad():
        got = fused(torch.cat([dino_view, siglip_view], dim=1))
        expected = torch.cat([vits[0].get_intermediate_layers(dino_view, n={1})[0],
                              vits[1].get_intermediate_layers(siglip_view, n={1})[0]], dim=2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_timm_normalization_reproduces_openvlas_per_encoder_preprocessing(ref):
    """OpenVLA's processor normalises one [0, 1] image twice: ImageNet stats for DINOv2, 0.5/0.5 for SigLIP."""
    backbone = build_component("vision_backbones", ref.vision_spec(image_normalization="timm")).eval()
    pixels = torch.rand(2, 3, 28, 28)
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    vits = ref.reference_featurizers(backbone.state_dict(), prefix="")
    with torch.no_grad():
        got = backbone((pixels - 0.5) / 0.5)  # what VLAProcessor(image_mean=0.5, image_std=0.5) gives
        expected = torch.cat([vits[0].get_intermediate_layers((pixels - imagenet_mean) / imagenet_std, n={1})[0],
                              vits[1].get_intermediate_layers((pixels - 0.5) / 0.5, n={1})[0]], dim=2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not any("_scale" in key or "_shift" in key for key in backbone.state_dict())


def test_layer_scale_is_stored_as_scale_factor_like_openvla(fused):
    keys = list(fused.state_dict())
    assert "featurizer.blocks.0.ls1.scale_factor" in keys and "featurizer.blocks.2.ls2.scale_factor" in keys
    assert not any("gamma" in key for key in keys)
    # SigLIP has no LayerScale; its unused attention-pool head is kept for checkpoint compatibility.
    assert not any(k.startswith("fused_featurizer.") and "scale_factor" in k for k in keys)
    assert "fused_featurizer.attn_pool.latent" in keys and "featurizer.reg_token" in keys


@pytest.mark.parametrize("which", [0, 1])
def test_single_encoder_variants(ref, which):
    spec = ref.vision_spec(timm_model_ids=[ref.TIMM_IDS[which]], image_sizes=[ref.IMAGE_SIZE],
                           timm_overrides=[ref.TIMM_OVERRIDES[which]])
    backbone = build_component("vision_backbones", spec).eval()
    assert not backbone.use_fused_vision_backbone and not hasattr(backbone, "fused_featurizer")
    assert backbone.embed_dim == ref.TIMM_OVERRIDES[which]["embed_dim"]
    import timm

    vit = timm.create_model(ref.TIMM_IDS[which], pretrained=False, num_classes=0, img_size=ref.IMAGE_SIZE,
                            **ref.TIMM_OVERRIDES[which])
    vit.load_state_dict({k.removeprefix("featurizer.").replace("scale_factor", "gamma"): v
                         for k, v in backbone.state_dict().items()})
    images = torch.randn(1, 3, ref.IMAGE_SIZE, ref.IMAGE_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(backbone(images), vit.eval().get_intermediate_layers(images, n={1})[0])


def test_fsdp_units_are_the_vit_blocks(fused):
    assert {t.__name__ for t in fused.fsdp_unit_types()} == {"Block"}


def test_bad_inputs_and_configs_are_explained(fused, ref):
    with pytest.raises(VLAError, match=r"\(B, 3, H, W\)"):
        fused(torch.randn(1, 4, 28, 28))
    with pytest.raises(ConfigError, match="one or two"):
        build_component("vision_backbones", ref.vision_spec(timm_model_ids=ref.TIMM_IDS * 2))
    with pytest.raises(ConfigError, match="image_sizes"):
        build_component("vision_backbones", ref.vision_spec(image_sizes=[28]))
    with pytest.raises(ConfigError, match="same grid"):
        build_component("vision_backbones", ref.vision_spec(image_sizes=[28, 14]))
    with pytest.raises(ConfigError, match="timm cannot build"):
        build_component("vision_backbones", ref.vision_spec(timm_model_ids=["no_such_vit", ref.TIMM_IDS[1]]))
