"""openpi's prompt tokenizer for pi0 and pi0.5: the PaliGemma SentencePiece model, read from a local file.

Follows `PaligemmaTokenizer.tokenize` (openpi `src/openpi/models/tokenizer.py`):

* the task is cleaned: `strip()`, then "_" and "\\n" become spaces (no lower-casing);
* pi0: `encode(task, add_bos=True) + encode("\\n")` (the newline is the "start of answer" token);
* pi0.5: the state, already normalised to [-1, 1], becomes bins
  `np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1` (below -1 gives -1, above 1 gives 255)
  written as text: `encode(f"Task: {task}, State: {b1 b2 ...};\\nAction: ", add_bos=True)`;
* right-padded with id 0 (mask False) to `max_len`, or cut to `max_len` (mask all True).

openpi downloads `gs://big_vision/paligemma_tokenizer.model`; here the same file is given as a
local path (nothing is downloaded).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from vla_core.errors import ConfigError

logger = logging.getLogger(__name__)

#: File names the SentencePiece model is looked up under in a directory.
TOKENIZER_FILES = ("paligemma_tokenizer.model", "tokenizer.model")


def find_tokenizer_file(path: str | Path) -> Path | None:
    """A SentencePiece model file: `path` itself, or one of TOKENIZER_FILES inside the directory `path`."""
    path = Path(path)
    if path.is_file():
        return path
    for name in TOKENIZER_FILES:
        if (path / name).is_file():
            return path / name
    return None


def discretize_state(state: np.ndarray, num_bins: int = 256) -> np.ndarray:
    """(S,) normalised state -> (S,) int bins, exactly openpi's `np.digitize(...) - 1` (not clamped)."""
    return np.digitize(state, bins=np.linspace(-1, 1, num_bins + 1)[:-1]) - 1


class PaligemmaPromptTokenizer:
    """The PaliGemma SentencePiece model and openpi's prompt format.

    Args:
        path: a `.model` SentencePiece file, or a directory holding `paligemma_tokenizer.model` or
            `tokenizer.model`.
        max_len: tokens per prompt after padding/cutting (openpi: 48 for pi0, 200 for pi0.5).
    """

    def __init__(self, path: str | Path, max_len: int) -> None:
        import sentencepiece

        file = find_tokenizer_file(path)
        if file is None:
            raise ConfigError(
                f"no SentencePiece tokenizer at '{path}': give the PaliGemma tokenizer file (openpi downloads "
                "gs://big_vision/paligemma_tokenizer.model; transformers' paligemma repos ship it as tokenizer.model) "
                f"or a directory holding one of {', '.join(TOKENIZER_FILES)}.",
                "processor.tokenizer",
            )
        self.file = file
        self.model_proto = file.read_bytes()
        try:
            self.processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)
        except RuntimeError as exc:
            raise ConfigError(f"'{file}' is not a SentencePiece model ({exc}).", "processor.tokenizer") from None
        self.max_len = max_len

    @property
    def vocab_size(self) -> int:
        return int(self.processor.get_piece_size())

    @staticmethod
    def clean(prompt: str) -> str:
        """openpi's cleaning of the task text."""
        return prompt.strip().replace("_", " ").replace("\n", " ")

    def prompt_text(self, prompt: str, state: np.ndarray | None = None) -> str:
        """The text encoded with a BOS: the cleaned task (pi0) or the pi0.5 task + state prompt."""
        cleaned = self.clean(prompt)
        if state is None:
            return cleaned
        state_str = " ".join(map(str, discretize_state(np.asarray(state))))
        return f"Task: {cleaned}, State: {state_str};\nAction: "

    def token_ids(self, prompt: str, state: np.ndarray | None = None) -> list[int]:
        """Unpadded ids: pi0 `BOS task` + ids of "\\n"; pi0.5 `BOS Task: ..., State: ...;\\nAction: `."""
        ids = list(self.processor.encode(self.prompt_text(prompt, state), add_bos=True))
        if state is None:
            ids += list(self.processor.encode("\n"))
        return ids

    def tokenize(self, prompt: str, state: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens (max_len,) int64 (padding id 0), mask (max_len,) bool. `state` only for pi0.5."""
        ids = self.token_ids(prompt, state)
        if len(ids) > self.max_len:  # openpi warns and cuts, as here
            logger.warning("prompt of %d tokens cut to max_token_len %d; raise it if this happens often.",
                           len(ids), self.max_len)
            ids = ids[: self.max_len]
        tokens = torch.zeros(self.max_len, dtype=torch.int64)
        mask = torch.zeros(self.max_len, dtype=torch.bool)
        tokens[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
        mask[: len(ids)] = True
        return tokens, mask
