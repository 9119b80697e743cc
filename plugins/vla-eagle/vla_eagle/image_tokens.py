"""Where image tokens go in the language model's input sequence.

Two layouts:

* placeholders (Eagle's own): the prompt already holds `tokens_per_image` image-context
  tokens (`<IMG_CONTEXT>`, id 151669 in GR00T N1.5) for every image, written there by
  Eagle's processor (`<img>` + 256 x `<IMG_CONTEXT>` + `</img>` inside a Qwen chat
  template). Their embeddings are replaced, in order, by the image tokens of the valid
  cameras, exactly like `input_embeds[input_ids == image_token_index] = vit_embeds`.
  The sequence length stays L.
* prepend (for prompts without placeholders, e.g. a word-level tokenizer trained on the
  task strings): the image tokens of every camera come first, then the prompt; masked
  cameras are masked out of attention. The sequence is N_cam * tokens_per_image + L long.
"""

from __future__ import annotations

import torch

from vla_core.errors import DataError


def scatter_into_placeholders(
    text_embeds: torch.Tensor,
    lang_tokens: torch.Tensor,
    image_tokens: torch.Tensor,
    image_token_id: int,
    images_per_row: torch.Tensor,
) -> torch.Tensor:
    """Replace the placeholder embeddings by image tokens.

    Args:
        text_embeds: (B, L, D) embeddings of `lang_tokens`.
        lang_tokens: (B, L) long, holding `image_token_id` where image tokens go.
        image_tokens: (N_valid, T, D), the valid images of row 0, then of row 1, ...
        image_token_id: the placeholder id.
        images_per_row: (B,) long, how many of `image_tokens` belong to each row.

    Returns:
        (B, L, D): `text_embeds` with row b's placeholders filled by its images' tokens, in order.
    """
    is_image = lang_tokens == image_token_id
    per_image = image_tokens.shape[1]
    found = is_image.sum(dim=1)
    expected = images_per_row * per_image
    if not torch.equal(found, expected):
        row = int((found != expected).nonzero()[0, 0])
        raise DataError(
            f"lang_tokens row {row} holds {int(found[row])} image placeholder tokens (id {image_token_id}), "
            "but "
            f"its {int(images_per_row[row])} valid camera(s) give {int(expected[row])} image tokens "
            f"({per_image} per image). Build the prompt with Eagle's layout ({per_image} placeholders "
            "per valid image, as GR00T's processor does), or leave the placeholders out and set "
            "image_token_placement: prepend."
        )
    flat = image_tokens.reshape(-1, image_tokens.shape[-1]).to(text_embeds.dtype)
    return text_embeds.masked_scatter(is_image.unsqueeze(-1), flat)


def prepend_image_tokens(
    text_embeds: torch.Tensor, lang_masks: torch.Tensor, image_tokens: torch.Tensor, img_masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put every camera's image tokens before the prompt.

    Args:
        text_embeds: (B, L, D) prompt embeddings.
        lang_masks: (B, L) bool.
        image_tokens: (B * N_cam, T, D), camera-major within each row.
        img_masks: (B, N_cam) bool; a False camera's tokens are masked out.

    Returns:
        embeds (B, N_cam * T + L, D) and mask (B, N_cam * T + L) bool.
    """
    batch, n_cam = img_masks.shape
    per_image = image_tokens.shape[1]
    images = image_tokens.reshape(batch, n_cam * per_image, -1).to(text_embeds.dtype)
    image_mask = img_masks.bool().repeat_interleave(per_image, dim=1)
    return torch.cat([images, text_embeds], dim=1), torch.cat([image_mask, lang_masks.bool()], dim=1)
