"""Reading the model weights of a sharded checkpoint (torch.distributed.checkpoint) in one process.

A checkpoint saved by several processes holds its weights as `model_shards/`: a DCP
directory with one `__<rank>_0.distcp` file per process and a `.metadata` file that says
which slice of which tensor each file holds. `read_sharded_state_dict` assembles the full
tensors from it (no process group needed), so `load_pretrained`, `vla predict` and
`vla export` read a sharded checkpoint like any other.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from vla_core.errors import CheckpointError

#: The DCP directory of a sharded checkpoint's model weights.
MODEL_SHARDS_DIR = "model_shards"
_METADATA = ".metadata"


def is_sharded(directory: str | Path) -> bool:
    """Whether `directory` holds its weights as DCP shards rather than safetensors."""
    return (Path(directory) / MODEL_SHARDS_DIR / _METADATA).is_file()


def read_sharded_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a DCP directory, whole, on the CPU.

    Args:
        directory: a DCP checkpoint directory (e.g. `<checkpoint>/model_shards`).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    directory = Path(directory)
    try:
        reader = dcp.FileSystemReader(str(directory))
        metadata = reader.read_metadata()
        state = {
            key: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
            for key, meta in metadata.state_dict_metadata.items()
            if isinstance(meta, TensorStorageMetadata)
        }
        with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(state, storage_reader=reader, no_dist=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"could not read the sharded weights in '{directory}': a shard is missing, truncated or corrupt "
            f"({type(exc).__name__}: {str(exc)[:300]}). Use another checkpoint or restore the files from a backup."
        ) from None
    return state
