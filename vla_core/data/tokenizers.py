"""Instruction tokenizers for the processor.

- `WordTokenizer`: a word-level vocabulary built from a dataset's task strings (lower-cased
  words and punctuation; id 0 = pad, 1 = unknown), saved with the checkpoint as
  `processor/vocab.json`. For small models trained from scratch.
- `HFTokenizer`: a Hugging Face tokenizer from a local directory
  (`AutoTokenizer.from_pretrained(path, local_files_only=True)`; nothing is downloaded and
  no remote code runs), saved with the checkpoint under `processor/tokenizer/`.

Both turn one string into (ids, mask) padded/truncated to `max_len`, right-padded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from vla_core.errors import ConfigError, DataError

_WORDS = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
VOCAB_FILE = "vocab.json"
HF_DIR = "tokenizer"


class WordTokenizer:
    """Word-level tokenizer: id 0 = pad, 1 = unknown, then the words in sorted order."""

    pad_token_id = 0
    unk_token_id = 1

    def __init__(self, words: Iterable[str]) -> None:
        self.words = list(words)
        self.ids = {w: i + 2 for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> WordTokenizer:
        """The vocabulary of every word in `texts` (sorted, so the ids are reproducible)."""
        return cls(sorted({w for t in texts for w in cls.split(t)}))

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORDS.findall(text.lower())

    @property
    def vocab_size(self) -> int:
        return len(self.words) + 2

    def encode(self, text: str, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ids (max_len,) int64, mask (max_len,) bool."""
        ids = [self.ids.get(w, self.unk_token_id) for w in self.split(text)][:max_len]
        return _pad(ids, max_len, self.pad_token_id)

    def save(self, directory: Path) -> None:
        payload = {"type": "word", "pad_token_id": 0, "unk_token_id": 1, "words": self.words}
        (directory / VOCAB_FILE).write_text(json.dumps(payload, indent=1))

    @classmethod
    def load(cls, directory: Path) -> WordTokenizer:
        path = directory / VOCAB_FILE
        try:
            payload = json.loads(path.read_text())
            return cls(payload["words"])
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise DataError(f"{path} could not be read ({exc}); the checkpoint's processor is incomplete.") from None


class HFTokenizer:
    """A local Hugging Face tokenizer directory (tokenizer.json / sentencepiece files)."""

    def __init__(self, path: str | Path) -> None:
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise ConfigError(
                f"tokenizer directory '{path}' does not exist. Give a local directory holding a Hugging Face "
                "tokenizer (tokenizer.json or tokenizer.model), or tokenizer: word for a word-level vocabulary.",
                "processor.tokenizer",
            )
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"'{path}' could not be loaded as a tokenizer: {exc}", "processor.tokenizer") from None
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else 0

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def encode(self, text: str, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tokenizer(text, truncation=True, max_length=max_len)["input_ids"]
        return _pad(list(ids), max_len, self.pad_token_id)

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(directory / HF_DIR))


def _pad(ids: list[int], max_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.full((max_len,), pad_id, dtype=torch.int64)
    mask = torch.zeros(max_len, dtype=torch.bool)
    tokens[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
    mask[: len(ids)] = True
    return tokens, mask
