"""The order in which samples are trained on, as a pure function of (seed, step).

Every optimizer step consumes one global batch of `batch_size` samples from a seeded
permutation of the dataset (a new permutation each epoch; the last partial batch of an
epoch is dropped). The global batch is cut into `grad_accum_steps` micro-batches, and
each micro-batch into `world_size` equal slices, one per rank. Because the position is
a function of the step alone, a run resumed at step N reads exactly what an
uninterrupted run reads from step N on, and one process sees the same global batches as
N processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from vla_core.errors import ConfigError, DataError


class MicroBatch(NamedTuple):
    """One rank's share of one micro-batch: where it sits in the run and its samples as
    `(epoch, dataset_index)` pairs."""

    step: int
    micro_step: int
    keys: list[tuple[int, int]]


def check_batch_split(batch_size: int, grad_accum_steps: int, world_size: int) -> None:
    """A global batch must split evenly into micro-batches and processes (checked by
    `vla train --nproc` before it spawns anything, and again by each process)."""
    if batch_size % (grad_accum_steps * world_size):
        raise ConfigError(
            f"is {batch_size}, which does not split into {grad_accum_steps} micro-batches x {world_size} "
            f"processes; use a multiple of {grad_accum_steps * world_size} (or change --nproc / "
            "train.grad_accum_steps).",
            "train.batch_size",
        )


class GlobalBatchSampler:
    """Yields, for steps [start_step, end_step), this rank's micro-batches (`MicroBatch`).

    Args:
        num_samples: length of the dataset.
        batch_size: global samples per optimizer step (all ranks, all micro-batches).
        grad_accum_steps: micro-batches per optimizer step.
        world_size: number of ranks; rank: this one.
        seed: seeds the per-epoch permutations.
        start_step, end_step: the optimizer steps to cover.
        shuffle: False keeps the dataset order (every epoch).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        grad_accum_steps: int = 1,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        start_step: int = 0,
        end_step: int = 1,
        shuffle: bool = True,
    ) -> None:
        check_batch_split(batch_size, grad_accum_steps, world_size)
        if num_samples < batch_size:
            raise DataError(
                f"the dataset has {num_samples} samples, fewer than one global batch (train.batch_size = "
                f"{batch_size}); lower train.batch_size or use more data."
            )
        self.num_samples, self.batch_size = num_samples, batch_size
        self.grad_accum_steps, self.world_size, self.rank = grad_accum_steps, world_size, rank
        self.seed, self.start_step, self.end_step, self.shuffle = seed, start_step, end_step, shuffle
        self.micro_batch_size = batch_size // grad_accum_steps
        self.per_rank = self.micro_batch_size // world_size
        self.steps_per_epoch = num_samples // batch_size
        self._cache: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        """The dataset order of `epoch`, seeded by (seed, epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        if self.shuffle:
            order = np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        self._cache = (epoch, order)
        return order

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def keys(self, step: int, micro_step: int, rank: int | None = None) -> list[tuple[int, int]]:
        """(epoch, index) keys of `rank`'s slice of micro-batch `micro_step` of `step`."""
        rank = self.rank if rank is None else rank
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size + micro_step * self.micro_batch_size + rank * self.per_rank
        order = self.permutation(epoch)
        return [(epoch, int(i)) for i in order[start : start + self.per_rank]]

    def __iter__(self) -> Iterator[MicroBatch]:
        for step in range(self.start_step, self.end_step):
            for micro_step in range(self.grad_accum_steps):
                yield MicroBatch(step, micro_step, self.keys(step, micro_step))

    def __len__(self) -> int:
        return (self.end_step - self.start_step) * self.grad_accum_steps
