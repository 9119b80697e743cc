"""Checks and padding of a head's inputs, with errors that say how to fix them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vla_core.errors import DataError


def check_features(features: torch.Tensor, width: int, head: str, parameter: str = "backbone_embedding_dim") -> None:
    """features must be (B, S, width)."""
    if features.ndim != 3 or features.shape[-1] != width:
        raise DataError(
            f"{head} expects backbone features (B, S, {width}), got {tuple(features.shape)}. Set the head's "
            f"{parameter} to the backbone's width, or add a projector to {width}."
        )


def state_tokens(states: torch.Tensor, state_dim: int, dtype: torch.dtype) -> torch.Tensor:
    """states (B, D) or (B, 1, D) with D <= state_dim -> (B, 1, state_dim), zero-padded on the
    right like GR00T pads every robot's state to max_state_dim."""
    if states.ndim == 2:
        states = states.unsqueeze(1)
    if states.ndim != 3 or states.shape[1] != 1:
        raise DataError(f"states must be (B, state_dim) or (B, 1, state_dim), got {tuple(states.shape)}.")
    width = states.shape[-1]
    if width > state_dim:
        raise DataError(
            f"states have {width} dims but the head's state_dim is {state_dim}; raise state_dim (GR00T: "
            "max_state_dim) or pad the state to it in the embodiment spec."
        )
    return F.pad(states.to(dtype), (0, state_dim - width))


def pad_action_dim(x: torch.Tensor, action_dim: int, ori_action_dim: int | None, name: str) -> torch.Tensor:
    """(B, T, A) with A == action_dim, or A == ori_action_dim (zero-padded) -> (B, T, action_dim)."""
    width = x.shape[-1]
    if width == action_dim:
        return x
    if ori_action_dim is not None and width == ori_action_dim:
        return F.pad(x, (0, action_dim - width))
    allowed = f"{action_dim}" + (f" or ori_action_dim={ori_action_dim}" if ori_action_dim is not None else "")
    raise DataError(
        f"{name} has {width} action dims; this head expects action_dim={allowed}. Pad the actions to the "
        "model's max action dim in the embodiment spec, or set action_dim / ori_action_dim to match."
    )


def check_chunk(x: torch.Tensor, horizon: int, name: str) -> None:
    """x must be (B, horizon, A)."""
    if x.ndim != 3 or x.shape[1] != horizon:
        raise DataError(
            f"{name} must be (B, {horizon}, A) (the head's chunk length), got {tuple(x.shape)}. Set the "
            "head's chunk length to the dataset's action horizon."
        )
