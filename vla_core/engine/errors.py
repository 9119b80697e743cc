"""Errors the engine raises for the user (all `VLAError`s: the CLI prints them and exits 2)."""

from __future__ import annotations

from vla_core.errors import VLAError


class TrainingDivergedError(VLAError):
    """The loss (or the gradient norm) became NaN or infinite; `step` is the optimizer step
    (1-based) that produced it, `samples` the (dataset index, episode index) pairs of the
    offending micro-batches."""

    def __init__(self, message: str, step: int, samples: list[tuple[int, int | None]]) -> None:
        self.step, self.samples = step, samples
        super().__init__(message)
