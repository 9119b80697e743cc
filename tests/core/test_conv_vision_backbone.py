"""TransformersVisionBackbone over a convolutional net: the feature map becomes tokens."""

from __future__ import annotations

import torch

from vla_core.models.transformers_backbones import TransformersVisionBackbone


def test_resnet_feature_map_becomes_row_major_tokens() -> None:
    config = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}
    torch.manual_seed(0)
    backbone = TransformersVisionBackbone(model_type="resnet", config=config).eval()
    images = torch.randn(2, 3, 32, 32)
    tokens = backbone(images)
    feature_map = backbone.model(pixel_values=images).last_hidden_state  # transformers' ResNetModel
    assert backbone.embed_dim == 16 and feature_map.shape == (2, 16, 4, 4)
    assert tokens.shape == (2, 16, 16)
    torch.testing.assert_close(tokens[:, 1 * 4 + 2], feature_map[:, :, 1, 2])  # token h * w_size + w

    earlier = TransformersVisionBackbone(model_type="resnet", config=config, feature_layer=-2).eval()
    assert earlier.embed_dim == 8 and earlier(images).shape == (2, 8 * 8, 8)
