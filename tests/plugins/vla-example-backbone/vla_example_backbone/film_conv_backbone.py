"""FiLMConvBackbone: a conv image encoder whose every stage is modulated by the instruction (RT-1's FiLM).

    lang_tokens (B, L) -> embeddings (B, L, E) -> masked mean (B, E) -> per stage gamma, beta (B, C)
    images (B, N_cam, 3, H, W) -> [conv stride 2 -> FiLM -> GELU] x 2 -> (B, N_cam, C, H/4, W/4)
      -> one token per cell, projected: (B, N_cam * P, D), P = (H/4) * (W/4)
    features = [image tokens ; instruction tokens projected] (B, N_cam * P + L, D)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import DataError
from vla_core.protocols import BackboneOutput

#: ImageNet statistics: this encoder's images are normalised with them (declared to the processor).
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class FiLMConvBackbone(nn.Module):
    """Images encoded by two strided conv stages, each scaled and shifted per channel by the
    instruction (FiLM), so the image features already depend on the task; the instruction
    tokens follow the image tokens in the output.

    Args:
        vocab_size: token ids it embeds; the processor's tokenizer must give ids below it.
        hidden_size: width D of the output features.
        channels: conv channels C.
        text_dim: width E of the token embeddings.
        image_size: [H, W] of the images (multiples of 4).
        max_cameras: most cameras one sample has (a learned embedding each).
    """

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 128,
        channels: int = 32,
        text_dim: int = 64,
        image_size: list[int] | None = None,
        max_cameras: int = 3,
    ) -> None:
        super().__init__()
        height, width = image_size or [64, 64]
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.image_size = (height, width)
        self.image_mean, self.image_std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        self.num_cells = (height // 4) * (width // 4)
        self.token_embed = nn.Embedding(vocab_size, text_dim)
        self.stages = nn.ModuleList([nn.Conv2d(3, channels, 3, stride=2, padding=1),
                                     nn.Conv2d(channels, channels, 3, stride=2, padding=1)])
        # One (gamma, beta) pair per stage from the pooled instruction; zero-initialised so the
        # untrained encoder starts as a plain conv net (gamma = 1 + 0).
        self.film = nn.ModuleList([nn.Linear(text_dim, 2 * channels) for _ in self.stages])
        for film in self.film:
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)
        self.cell_position = nn.Parameter(torch.randn(self.num_cells, hidden_size) * 0.02)
        self.camera_embed = nn.Embedding(max_cameras, hidden_size)
        self.image_proj = nn.Linear(channels, hidden_size)
        self.text_proj = nn.Linear(text_dim, hidden_size)

    def processor_settings(self) -> dict[str, list]:
        """What the VLAProcessor must make images with (training checks it)."""
        return {"image_size": list(self.image_size), "image_mean": self.image_mean, "image_std": self.image_std}

    def forward(
        self, images: torch.Tensor, lang_tokens: torch.Tensor, img_masks: torch.Tensor, lang_masks: torch.Tensor
    ) -> BackboneOutput:
        """images (B, N_cam, 3, H, W), lang_tokens (B, L), img_masks (B, N_cam), lang_masks (B, L)
        -> BackboneOutput(features (B, N_cam * P + L, hidden_size), mask (B, N_cam * P + L), None)."""
        batch, cameras = images.shape[:2]
        if tuple(images.shape[-2:]) != self.image_size or cameras > self.camera_embed.num_embeddings:
            raise DataError(f"FiLMConvBackbone reads up to {self.camera_embed.num_embeddings} cameras of "
                            f"{list(self.image_size)} images, got {tuple(images.shape)}; set the processor's "
                            f"image_size to {list(self.image_size)}.")
        if lang_tokens.numel() and int(lang_tokens.max()) >= self.vocab_size:
            raise DataError(f"token id {int(lang_tokens.max())} is outside FiLMConvBackbone's vocabulary "
                            f"({self.vocab_size}); raise vocab_size to the processor tokenizer's size.")
        words = self.token_embed(lang_tokens)  # (B, L, E)
        weights = lang_masks.to(words.dtype).unsqueeze(-1)
        instruction = (words * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, E)
        instruction = instruction.repeat_interleave(cameras, dim=0)  # (B * N_cam, E): one per image
        x = images.flatten(0, 1).to(words.dtype)  # (B * N_cam, 3, H, W)
        for conv, film in zip(self.stages, self.film, strict=True):
            x = conv(x)
            gamma, beta = film(instruction).chunk(2, dim=-1)  # (B * N_cam, C) each
            x = F.gelu(x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        cells = self.image_proj(x.flatten(2).transpose(1, 2)) + self.cell_position  # (B * N_cam, P, D)
        cells = cells.unflatten(0, (batch, cameras)) + self.camera_embed.weight[:cameras, None]  # (B, N_cam, P, D)
        features = torch.cat([cells.flatten(1, 2), self.text_proj(words)], dim=1)
        mask = torch.cat([img_masks.bool().repeat_interleave(self.num_cells, dim=1), lang_masks.bool()], dim=1)
        return BackboneOutput(features, mask, None)
