"""GR00T N1.5's prompt: Eagle's chat template with `<IMG_CONTEXT>` placeholders.

`GR00TTransform._apply_vlm_processing` (Isaac-GR00T `gr00t/model/transforms.py`) builds one
user turn, every camera image first (frame-major, cameras in concatenation order), then
the instruction, and renders it with Eagle's chat template (`chat_template.json`,
`add_generation_prompt=True`)::

    <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
    <|im_start|>user\n<image-1><image-2>{instruction}<|im_end|>\n<|im_start|>assistant\n

Eagle's processor (`processing_eagle2_5_vl.py` `replace_media_placeholder`) then replaces
each `<image-k>` by `<image k><img>` + `<IMG_CONTEXT>` x (tokens_per_tile x tiles) + `</img>`
(a 224 px image is one tile of 256 tokens). The batch is tokenized together with padding on
the left (`build_eagle_processor` sets `padding_side = "left"`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

SYSTEM_TURN = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
PROCESSOR_CONFIG = "processor_config.json"


@dataclass(frozen=True)
class ImageTokens:
    """Eagle's image markup (processor_config.json: image_token, image_start_token, image_end_token,
    tokens_per_tile)."""

    context: str = "<IMG_CONTEXT>"
    start: str = "<img>"
    end: str = "</img>"
    per_tile: int = 256

    @classmethod
    def from_directory(cls, directory: str | Path) -> ImageTokens:
        """The settings of an Eagle processor directory; the defaults when it has no processor_config.json."""
        path = Path(directory) / PROCESSOR_CONFIG
        if not path.is_file():
            return cls()
        saved = json.loads(path.read_text())
        return cls(
            context=saved.get("image_token", cls.context),
            start=saved.get("image_start_token", cls.start),
            end=saved.get("image_end_token", cls.end),
            per_tile=int(saved.get("tokens_per_tile", cls.per_tile)),
        )


def eagle_prompt(instruction: str, num_images: int, markup: ImageTokens) -> str:
    """The text Eagle's processor tokenizes for one sample: chat template + expanded image markup."""
    images = "".join(
        f"<image {k}>{markup.start}{markup.context * markup.per_tile}{markup.end}" for k in range(1, num_images + 1)
    )
    return f"{SYSTEM_TURN}<|im_start|>user\n{images}{instruction}<|im_end|>\n<|im_start|>assistant\n"


def left_pad(rows: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows of different lengths -> ids (B, L) int64 and mask (B, L) bool, padded on the left."""
    length = max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.int64)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, length - len(row) :] = row
            mask[i, length - len(row) :] = True
    return ids, mask
