"""The sample schema: the batch every VLA consumes (and what the processor produces per sample).

Batch keys (B batch, N_cam cameras, L language tokens, T chunk length):

    images          (B, N_cam, C, H, W) float32, normalised by the processor
    img_masks       (B, N_cam)          bool, False where a camera is missing
    lang_tokens     (B, L)              int64, padded with the tokenizer's pad id
    lang_masks      (B, L)              bool, True on real tokens
    states          (B, max_state_dim)  float32, normalised, zero-padded
    actions         (B, T, max_action_dim) float32, normalised, zero-padded   (training only)
    action_masks    (B, T)              bool, False past the episode end      (training only)
    embodiment_id   (B,)                int64

A processed sample has the same keys without the leading B. The keys are the VLA's
`forward`/`predict_action` argument names, so a batch passes as `vla(**batch)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vla_core.errors import DataError

#: key -> (dims without the batch dim, dtype)
SAMPLE_SCHEMA: dict[str, tuple[tuple[str, ...], torch.dtype]] = {
    "images": (("N_cam", "C", "H", "W"), torch.float32),
    "img_masks": (("N_cam",), torch.bool),
    "lang_tokens": (("L",), torch.int64),
    "lang_masks": (("L",), torch.bool),
    "states": (("max_state_dim",), torch.float32),
    "actions": (("T", "max_action_dim"), torch.float32),
    "action_masks": (("T",), torch.bool),
    "embodiment_id": ((), torch.int64),
}
BATCH_KEYS: tuple[str, ...] = tuple(SAMPLE_SCHEMA)
#: What inference needs (no targets).
OBSERVATION_KEYS: tuple[str, ...] = tuple(k for k in BATCH_KEYS if k not in ("actions", "action_masks"))


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack processed samples into a batch: tensors are stacked along a new dim 0; other
    values (e.g. strings kept for logging) become lists. Every sample must have the same keys."""
    if not samples:
        raise DataError("collate: got no samples.")
    keys = list(samples[0])
    for i, sample in enumerate(samples[1:], start=1):
        if list(sample) != keys and set(sample) != set(keys):
            raise DataError(
                f"collate: sample {i} has keys {sorted(sample)} but sample 0 has {sorted(keys)}; samples with and "
                "without actions cannot share a batch."
            )
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise DataError(
                    f"collate: '{key}' has different shapes across samples {sorted(shapes)}; the processor must pad "
                    "every sample to the same size (same cameras, image size, max_lang_len, chunk size)."
                )
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def check_batch(batch: Mapping[str, Any], require_actions: bool = True) -> None:
    """Raise DataError naming every schema key that is missing or has the wrong rank/dtype."""
    problems = []
    batch_size = None
    for key, (dims, dtype) in SAMPLE_SCHEMA.items():
        if key not in batch:
            if require_actions or key in OBSERVATION_KEYS:
                problems.append(f"'{key}' is missing")
            continue
        value = batch[key]
        if not isinstance(value, torch.Tensor):
            problems.append(f"'{key}' is a {type(value).__name__}, not a tensor")
            continue
        if value.ndim != len(dims) + 1:
            problems.append(f"'{key}' has shape {tuple(value.shape)}, expected (B, {', '.join(dims)})")
        if value.dtype != dtype:
            problems.append(f"'{key}' has dtype {value.dtype}, expected {dtype}")
        if batch_size is None:
            batch_size = value.shape[0] if value.ndim else None
        elif value.ndim and value.shape[0] != batch_size:
            problems.append(f"'{key}' has batch size {value.shape[0]}, others {batch_size}")
    if problems:
        raise DataError("the batch does not follow the sample schema: " + "; ".join(problems) + ".")
