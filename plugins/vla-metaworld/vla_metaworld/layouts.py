"""Seed -> Meta-World layout (object and goal positions), deterministically.

Meta-World's own mechanism: `MT1(task, seed=s)` samples 50 layouts (`train_tasks`) with
numpy seeded by `s`, and `env.set_task(t)` freezes one of them. Layout seed `n` is entry
`n % 50` of `MT1(task, seed=n // 50)`, so seeds 0..49 share one MT1 and a seed range far
from the training one (e.g. 1000+) draws layouts from a different MT1 seed.
"""

from __future__ import annotations

from typing import Any

LAYOUTS_PER_SEED = 50  # MT1 samples this many layouts per benchmark seed


class LayoutBank:
    """Caches the MT1 layout lists already sampled, per (task, MT1 seed)."""

    def __init__(self) -> None:
        self._layouts: dict[tuple[str, int], list[Any]] = {}

    def layout(self, task: str, seed: int) -> Any:
        """The `metaworld.Task` for layout seed `seed` (>= 0) of `task` (a v3 name)."""
        if seed < 0:
            raise ValueError(f"layout seeds are >= 0, got {seed}")
        mt1_seed, index = divmod(seed, LAYOUTS_PER_SEED)
        key = (task, mt1_seed)
        if key not in self._layouts:
            import metaworld

            self._layouts[key] = list(metaworld.MT1(task, seed=mt1_seed).train_tasks)
        return self._layouts[key][index]
