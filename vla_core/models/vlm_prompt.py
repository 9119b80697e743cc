"""Where a VLM's image tokens go: the token ids around the instruction, as the model's own
processor and chat template lay them out.

A `PromptLayout` holds, for every number of images 0..max_images, the token ids that come
before the instruction (the chat template's opening with each image's placeholder block
already expanded to the image's token count, e.g. Qwen's `<|vision_start|><|image_pad|>*64
<|vision_end|>`), and the ids after it (end of turn, generation prompt). It is derived once
from the saved processor (`from_processor`) and stored in the checkpoint's config, so a
saved model needs neither the processor nor the original directory again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from vla_core.errors import ConfigError

#: The text the template is rendered around; split away again, never tokenized.
_SENTINEL = "\u2063VLA_INSTRUCTION\u2063"


@dataclass
class PromptLayout:
    """Token ids around the instruction.

    Attributes:
        prefixes: prefixes[n] = the ids before the instruction when n images are shown.
        suffix: the ids after the instruction.
        skip_ids: ids the tokenizer adds to every text on its own (e.g. Gemma's <bos>) that the
            template already holds; dropped from the instruction tokens.
        image_token_id: the placeholder id the model replaces with image features.
    """

    prefixes: list[list[int]]
    suffix: list[int]
    image_token_id: int
    skip_ids: list[int] = field(default_factory=list)

    @property
    def max_images(self) -> int:
        return len(self.prefixes) - 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptLayout:
        try:
            return cls(prefixes=[list(map(int, p)) for p in data["prefixes"]], suffix=list(map(int, data["suffix"])),
                       image_token_id=int(data["image_token_id"]), skip_ids=list(map(int, data.get("skip_ids", []))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"is not a prompt layout ({exc}); it needs prefixes (one id list per image count), "
                              "suffix and image_token_id. Remove it to derive it from the processor.",
                              "prompt_layout") from None

    @classmethod
    def from_processor(cls, processor: Any, image_size: tuple[int, int], max_images: int,
                       image_token_id: int) -> PromptLayout:
        """Render the processor's chat template around a sentinel instruction with 0..max_images
        images of `image_size`, and tokenize the text before the sentinel through the processor
        (which expands every image placeholder to its token count) and the text after it."""
        import numpy as np

        tokenizer = getattr(processor, "tokenizer", processor)
        if getattr(processor, "chat_template", None) is None and getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError("the model's processor has no chat template, so where its image tokens go is unknown; "
                              "save the processor with its chat template, or give prompt_layout.", "prompt_layout")
        prefixes = []
        suffix: list[int] = []
        for n in range(max_images + 1):
            content = [{"type": "image"}] * n + [{"type": "text", "text": _SENTINEL}]
            text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                 tokenize=False)
            before, _, after = text.partition(_SENTINEL)
            images = [np.zeros((*image_size, 3), dtype=np.uint8) for _ in range(n)]
            if n:
                ids = processor(text=[before], images=[images], add_special_tokens=False)["input_ids"][0]
            else:
                ids = tokenizer(before, add_special_tokens=False)["input_ids"]
            prefixes.append([int(i) for i in ids])
            suffix = [int(i) for i in tokenizer(after, add_special_tokens=False)["input_ids"]]
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        with_specials = tokenizer("a")["input_ids"]
        skip = [int(i) for i in with_specials if i not in plain]
        return cls(prefixes, suffix, image_token_id, skip)

    @classmethod
    def image_tokens_first(cls, tokens_per_image: int, max_images: int, image_token_id: int,
                           open_id: int | None = None, close_id: int | None = None) -> PromptLayout:
        """Without a processor: each image's placeholders (between `open_id` and `close_id` where
        the model has them, e.g. Qwen's vision start/end) before the instruction, nothing after."""
        block = [*([open_id] if open_id is not None else []), *[image_token_id] * tokens_per_image,
                 *([close_id] if close_id is not None else [])]
        return cls([block * n for n in range(max_images + 1)], [], image_token_id, [])

    def assemble(self, lang_tokens: torch.Tensor, lang_masks: torch.Tensor,
                 num_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row [prefix for its image count] [its valid instruction tokens] [suffix], right-padded.

        lang_tokens, lang_masks (B, L); num_images (B,) long -> input_ids (B, S) long and
        mask (B, S) bool (padding id 0, masked).
        """
        if int(num_images.max()) > self.max_images:
            raise ConfigError(f"a batch row shows {int(num_images.max())} images but the prompt layout was made for "
                              f"at most {self.max_images}; raise max_cameras.", "max_cameras")
        keep = lang_masks.bool()
        for skip in self.skip_ids:
            keep &= lang_tokens != skip
        rows = []
        for row in range(lang_tokens.shape[0]):
            prefix = torch.tensor(self.prefixes[int(num_images[row])], dtype=torch.long)
            text = lang_tokens[row][keep[row]].cpu()
            rows.append(torch.cat([prefix, text, torch.tensor(self.suffix, dtype=torch.long)]))
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for row, values in enumerate(rows):
            ids[row, : len(values)] = values
            mask[row, : len(values)] = True
        return ids.to(lang_tokens.device), mask.to(lang_tokens.device)
