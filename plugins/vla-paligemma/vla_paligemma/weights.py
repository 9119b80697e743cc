"""Loading a component's own pretrained weights from a transformers-style checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from vla_core.errors import CheckpointError
from vla_core.models.weights import LoadReport, load_into, load_state_dict


def load_component_weights(
    module: nn.Module, path: str | Path, rename: Callable[[str], str | None], strict: bool = True
) -> LoadReport:
    """Load the safetensors weights under `path` (a directory or a file) into `module`.

    `rename` maps a checkpoint key to ours, or to None for keys the component does not
    own (an LM head, another model's parts). Missing, unexpected or mis-shaped keys
    raise a CheckpointError that names them (shapes included).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"pretrained_name_or_path '{path}' does not exist. Nothing is downloaded at run time: "
            "download the model once and point to that local directory."
        )
    state = {}
    for key, tensor in load_state_dict(path).items():
        ours = rename(key)
        if ours is not None:
            state[ours] = tensor
    return load_into(module, state, strict=strict, source=str(path))
