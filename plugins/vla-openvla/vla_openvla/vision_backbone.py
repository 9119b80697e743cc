"""Prismatic's vision backbone: one or two timm ViTs, patch features of the second-to-last block.

OpenVLA uses "DinoSigLIP": DINOv2 ViT-L/14 with 4 registers (`featurizer`) and SigLIP
SO400M/14 (`fused_featurizer`), both at 224 px, whose patch features are concatenated
along the channel dim (1024 + 1152 = 2176 wide, 256 patches). Each featurizer returns
the output of its second-to-last block without the prefix (class/register) tokens and
without the final norm, like `get_intermediate_layers(x, n={depth - 2})` in the
reference. The final block, norm and SigLIP's attention-pool head are kept as (unused)
parameters so the released checkpoints load key for key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from vla_core.errors import ConfigError, VLAError
from vla_openvla.layer_scale import rename_layer_scales

DINOV2_VIT_L = "vit_large_patch14_reg4_dinov2"
SIGLIP_SO400M_224 = "vit_so400m_patch14_siglip_224"


@dataclass(frozen=True)
class PrismaticVisionConfig:
    """What the backbone expects and gives, readable like a transformers config
    (`vla build --predict` and processors look for `config.image_size`)."""

    image_size: int
    num_patches: int
    embed_dim: int


def create_featurizer(model_id: str, image_size: int, act_layer: str | None, overrides: dict[str, Any]) -> nn.Module:
    """A randomly initialised timm ViT without classifier, LayerScales renamed to `scale_factor`."""
    import timm

    try:
        vit = timm.create_model(
            model_id, pretrained=False, num_classes=0, img_size=image_size, act_layer=act_layer, **overrides
        )
    except RuntimeError as exc:  # timm's "Unknown model (...)"
        raise ConfigError(f"timm cannot build '{model_id}' ({exc}); use a timm ViT name such as "
                          f"'{DINOV2_VIT_L}' or '{SIGLIP_SO400M_224}'.") from None
    if not hasattr(vit, "blocks") or not hasattr(vit, "patch_embed"):
        raise ConfigError(f"'{model_id}' is not a timm VisionTransformer; Prismatic featurizers must be ViTs.")
    rename_layer_scales(vit)
    return vit


def penultimate_patch_features(vit: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) -> (B, P, D): the output of block `depth - 2`, prefix tokens removed.

    The same computation as timm's `forward_intermediates` up to that block; the last
    block is never run (its output is not used).
    """
    x = vit.patch_embed(images)
    x = vit._pos_embed(x)
    x = vit.patch_drop(x)
    x = vit.norm_pre(x)
    for block in vit.blocks[: len(vit.blocks) - 1]:
        x = block(x)
    return x[:, vit.num_prefix_tokens :]


class PrismaticVisionBackbone(nn.Module):
    """Prismatic's (fused) ViT featurizer: images (B, C, H, W) -> patch features (B, P, embed_dim).

    With two featurizers the input may hold two channel-stacked copies of the image,
    (B, 6, H, W), each normalised for its own encoder (the reference processor's
    output: DINOv2's ImageNet statistics first, SigLIP's 0.5/0.5 second). A (B, 3, H, W)
    input goes to every featurizer: as given, or, with `image_normalization: timm`,
    re-normalised per featurizer from `input_mean`/`input_std` (what the processor
    applied) to the featurizer's own timm statistics, which reproduces OpenVLA's
    preprocessing from one normalised image.

    Args:
        timm_model_ids: one or two timm ViT names; the first is `featurizer`, the second `fused_featurizer`.
        image_sizes: input resolution of each featurizer (square).
        timm_override_act_layers: activation override per featurizer ("quick_gelu" for CLIP); null keeps timm's.
        timm_overrides: extra timm.create_model keyword arguments per featurizer, e.g. embed_dim, depth,
            num_heads, patch_size for a small model.
        image_normalization: "as_given" feeds 3-channel images unchanged to every featurizer; "timm"
            re-normalises them to each featurizer's timm mean/std (ImageNet for DINOv2, 0.5 for SigLIP).
        input_mean: per-channel mean the processor subtracted (used with image_normalization: timm).
        input_std: per-channel std the processor divided by (used with image_normalization: timm).
    """

    def __init__(
        self,
        timm_model_ids: tuple[str, ...] = (DINOV2_VIT_L, SIGLIP_SO400M_224),
        image_sizes: tuple[int, ...] = (224, 224),
        timm_override_act_layers: tuple[str | None, ...] | None = None,
        timm_overrides: tuple[dict[str, Any], ...] | None = None,
        image_normalization: Literal["as_given", "timm"] = "as_given",
        input_mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        input_std: tuple[float, float, float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__()
        count = len(timm_model_ids)
        act_layers = tuple(timm_override_act_layers or (None,) * count)
        overrides = tuple(timm_overrides or ({},) * count)
        if not 1 <= count <= 2:
            raise ConfigError(f"has {count} entries; Prismatic fuses one or two ViTs.", "timm_model_ids")
        for name, values in (("image_sizes", image_sizes), ("timm_override_act_layers", act_layers),
                             ("timm_overrides", overrides)):
            if len(values) != count:
                raise ConfigError(f"has {len(values)} entries but timm_model_ids has {count}; give one per featurizer.",
                                  name)
        self.use_fused_vision_backbone = count == 2
        self.featurizer = create_featurizer(timm_model_ids[0], image_sizes[0], act_layers[0], dict(overrides[0]))
        self.embed_dim: int = self.featurizer.embed_dim
        if self.use_fused_vision_backbone:
            self.fused_featurizer = create_featurizer(timm_model_ids[1], image_sizes[1], act_layers[1],
                                                      dict(overrides[1]))
            self.embed_dim += self.fused_featurizer.embed_dim
            if self.fused_featurizer.patch_embed.num_patches != self.num_patches:
                raise ConfigError(
                    f"the two featurizers give {self.num_patches} and {self.fused_featurizer.patch_embed.num_patches} "
                    "patches per image; their features are concatenated patch by patch, so choose image sizes and "
                    "patch sizes that give the same grid.",
                    "image_sizes",
                )
        self.image_normalization = image_normalization
        self.config = PrismaticVisionConfig(image_sizes[0], self.num_patches, self.embed_dim)
        # x_featurizer = x * scale + shift maps the processor's normalisation to the featurizer's
        # (non-persistent buffers: not part of the checkpoint layout).
        for index, vit in enumerate(self.featurizers):
            cfg = getattr(vit, "pretrained_cfg", None) or {}
            mean = torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32)
            std = torch.tensor(cfg.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32)
            scale = torch.tensor(input_std, dtype=torch.float32) / std
            shift = (torch.tensor(input_mean, dtype=torch.float32) - mean) / std
            self.register_buffer(f"_scale{index}", scale.view(1, 3, 1, 1), persistent=False)
            self.register_buffer(f"_shift{index}", shift.view(1, 3, 1, 1), persistent=False)

    @property
    def featurizers(self) -> list[nn.Module]:
        return [self.featurizer, self.fused_featurizer] if self.use_fused_vision_backbone else [self.featurizer]

    @property
    def num_patches(self) -> int:
        """Patches per image (256 for OpenVLA's 224 px, patch 14)."""
        return self.featurizer.patch_embed.num_patches

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """The ViT blocks, sharded as FSDP2 units."""
        return {type(block) for vit in self.featurizers for block in vit.blocks}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3 or 3 * num_featurizers, H, W), normalised -> (B, num_patches, embed_dim)."""
        featurizers = self.featurizers
        channels = images.shape[1] if images.ndim == 4 else None
        if channels not in (3, 3 * len(featurizers)):
            raise VLAError(
                f"PrismaticVisionBackbone got images of shape {tuple(images.shape)}; it expects (B, 3, H, W)"
                + (" or (B, 6, H, W) with the DINOv2- and SigLIP-normalised copies stacked" if len(featurizers) > 1
                   else "")
                + ". Check the processor's image output."
            )
        if channels > 3:
            inputs = list(images.split(3, dim=1))
        elif self.image_normalization == "timm":
            inputs = [images * getattr(self, f"_scale{i}") + getattr(self, f"_shift{i}")
                      for i in range(len(featurizers))]
        else:
            inputs = [images] * len(featurizers)
        dtype = self.featurizer.patch_embed.proj.weight.dtype
        patches = [penultimate_patch_features(vit, x.to(dtype)) for vit, x in zip(featurizers, inputs, strict=True)]
        return torch.cat(patches, dim=2)
