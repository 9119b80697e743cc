"""Sharded training state with torch.distributed.checkpoint (DCP): each process writes and reads its own shards.

A checkpoint of a multi-process run holds

    model_shards/                     DCP: the model's tensors, keyed by parameter name
    trainer_state/optimizer_shards/   DCP: AdamW's state, keyed by parameter name

Each process writes `__<rank>_0.distcp` with the slices it owns and rank 0 writes
`.metadata` (which slice of which tensor is where). Nothing is gathered: no process ever
holds more than its shards. Loading reshards, so a checkpoint saved by N processes
resumes on M (1 included): DCP reads, for each process, the slices its new shards cover.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from vla_core.engine.state_dicts import drop_state_not_saved
from vla_core.errors import CheckpointError
from vla_core.models.sharded_weights import MODEL_SHARDS_DIR, is_sharded

OPTIMIZER_SHARDS_DIR = "optimizer_shards"

__all__ = ["MODEL_SHARDS_DIR", "OPTIMIZER_SHARDS_DIR", "is_sharded", "load_sharded_model", "load_sharded_optimizer",
           "save_sharded"]


def save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path, state_dir: str) -> None:
    """Write this process's shards of the model and of the optimizer state into `directory`
    (a checkpoint being assembled, the same path on every process). A collective."""
    dcp.save(get_model_state_dict(model), checkpoint_id=str(directory / MODEL_SHARDS_DIR))
    optimizer_dir = directory / state_dir / OPTIMIZER_SHARDS_DIR
    dcp.save(get_optimizer_state_dict(model, optimizer), checkpoint_id=str(optimizer_dir))


def load_shards(state: dict[str, Any], path: Path, allow_partial: bool = False) -> None:
    """Fill `state`'s tensors (DTensor shards or whole tensors) in place from the DCP
    checkpoint at `path`, each process reading only its slices; `allow_partial`: keys of
    `state` the checkpoint lacks are left as they are."""
    try:
        with warnings.catch_warnings():  # on one process DCP warns that it loads without a process group: intended
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(state, checkpoint_id=str(path), planner=DefaultLoadPlanner(allow_partial_load=allow_partial))
    except Exception as exc:  # DCP wraps a reader's failure on any rank in a CheckpointException
        raise CheckpointError(
            f"could not read the sharded state in '{path}' ({type(exc).__name__}: {str(exc)[:400]}). The "
            "checkpoint is damaged or was saved by a different model; resume from another one."
        ) from None


def load_sharded_model(model: nn.Module, checkpoint: Path) -> None:
    """Fill `model` (sharded or not, materialised) from `<checkpoint>/model_shards`; every
    process reads only the slices of its shards. A collective."""
    state = get_model_state_dict(model)
    load_shards(state, checkpoint / MODEL_SHARDS_DIR)
    set_model_state_dict(model, state)


def saved_optimizer_parameters(path: Path) -> set[str]:
    """Names of the parameters with optimizer state in a DCP optimizer directory (keys
    are flattened as `state.<parameter name>.<exp_avg|exp_avg_sq|step>`)."""
    metadata = dcp.FileSystemReader(str(path)).read_metadata()
    return {key[len("state."):].rsplit(".", 1)[0] for key in metadata.state_dict_metadata if key.startswith("state.")}


def load_sharded_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path, state_dir: str
) -> None:
    """Load AdamW's state from `<checkpoint>/<state_dir>/optimizer_shards` into this
    process's shards, exactly as saved: parameters that had no state (no gradient yet) have
    none afterwards (see `state_dicts.load_full_optimizer_state` for why). A collective."""
    path = checkpoint / state_dir / OPTIMIZER_SHARDS_DIR
    # The template gives every trainable parameter a zero state to read into; the ones the
    # checkpoint lacks keep it until they are dropped below, hence a partial load.
    state = get_optimizer_state_dict(model, optimizer)
    load_shards(state, path, allow_partial=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state)
    drop_state_not_saved(model, optimizer, saved_optimizer_parameters(path))
