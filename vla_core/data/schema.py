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

With observation history (T_obs frames per sample, oldest first, the last one current; the
dataset's `delta_timestamps` on its cameras and state keys) three keys gain a time axis
after B and one key is added; the others are unchanged:

    images          (B, T_obs, N_cam, C, H, W) float32
    img_masks       (B, T_obs, N_cam)          bool
    states          (B, T_obs, max_state_dim)  float32
    obs_masks       (B, T_obs)                 bool, False for frames before the episode start
                                               (padding: they repeat the episode's first frame)

A batch has history exactly when it has `obs_masks`.
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
#: The keys that differ with observation history (a T_obs axis after B), and `obs_masks`.
HISTORY_SCHEMA: dict[str, tuple[tuple[str, ...], torch.dtype]] = {
    "images": (("T_obs", "N_cam", "C", "H", "W"), torch.float32),
    "img_masks": (("T_obs", "N_cam"), torch.bool),
    "states": (("T_obs", "max_state_dim"), torch.float32),
    "obs_masks": (("T_obs",), torch.bool),
}
HISTORY_KEY = "obs_masks"
BATCH_KEYS: tuple[str, ...] = tuple(SAMPLE_SCHEMA)
#: What inference needs (no targets).
OBSERVATION_KEYS: tuple[str, ...] = tuple(k for k in BATCH_KEYS if k not in ("actions", "action_masks"))


def has_history(batch: Mapping[str, Any]) -> bool:
    """Whether a batch (or processed sample) carries observation history (it has `obs_masks`)."""
    return HISTORY_KEY in batch


def batch_schema(history: bool) -> dict[str, tuple[tuple[str, ...], torch.dtype]]:
    """key -> (dims without B, dtype) of a batch without or with observation history."""
    return {**SAMPLE_SCHEMA, **HISTORY_SCHEMA} if history else dict(SAMPLE_SCHEMA)


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
                f"without actions, or with and without observation history ('{HISTORY_KEY}'), cannot share a batch."
            )
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise DataError(
                    f"collate: '{key}' has different shapes across samples {sorted(shapes)}; the processor must pad "
                    "every sample to the same size (same cameras, image size, max_lang_len, chunk size, history "
                    "length T_obs)."
                )
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def check_batch(batch: Mapping[str, Any], require_actions: bool = True) -> None:
    """Raise DataError naming every schema key that is missing or has the wrong rank/dtype;
    with observation history (`obs_masks` present) also a T_obs that differs between keys."""
    problems = []
    batch_size = None
    history = has_history(batch)
    for key, (dims, dtype) in batch_schema(history).items():
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
    if history:
        lengths = {
            key: batch[key].shape[1]
            for key in HISTORY_SCHEMA
            if isinstance(batch.get(key), torch.Tensor) and batch[key].ndim >= 2
        }
        if len(set(lengths.values())) > 1:
            problems.append(f"the history length T_obs (dim 1) differs between keys: {lengths}")
    if problems:
        raise DataError("the batch does not follow the sample schema: " + "; ".join(problems) + ".")
