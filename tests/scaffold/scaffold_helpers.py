"""Names and helpers shared by the scaffold tests and their fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

#: --kind -> the package name the tests give it.
PACKAGES = {
    "head": "my-head",
    "vlm_backbone": "my-vlm-backbone",
    "vision_backbone": "my-vision-backbone",
    "llm_backbone": "my-llm-backbone",
    "projector": "my-projector",
    "vla": "my-vla",
    "dataset": "my-dataset",
    "env": "my-env",
}


class Scaffolded(NamedTuple):
    """Where the generated packages are (`root/<name>`), the files each had as written (pip's
    in-tree build adds build/ and *.egg-info later), and where pip installed them (`site`)."""

    root: Path
    files: dict[str, list[str]]
    site: Path


def vla_cli(*args: str) -> int:
    """Run the `vla` CLI in this process -> exit code."""
    from vla_core.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
