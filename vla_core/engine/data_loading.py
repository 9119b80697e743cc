"""From a dataset and a processor to this rank's micro-batches.

Each DataLoader item is a whole micro-batch (`MicroBatch` from the sampler), processed
and collated inside one worker. Randomness in the processor (augmentations) runs in a
forked RNG seeded by (seed, step, micro-step, rank), so it does not depend on the number
of workers or on where a run was resumed, and it never disturbs the model's RNG. Seeding
once per micro-batch rather than per sample keeps the cost negligible.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vla_core.engine.sampler import GlobalBatchSampler, MicroBatch


class ProcessedBatches(Dataset):
    """`processor.collate([processor(dataset[i]) for i in micro_batch])`, keyed by `MicroBatch`.

    Args:
        dataset: returns raw samples (images, state, actions, task, ...).
        processor: raw sample -> unbatched model inputs; `collate` stacks them.
        seed: the run's seed.
        rank: this process's rank (ranks draw different random numbers).
    """

    def __init__(self, dataset: Any, processor: Any, seed: int, rank: int = 0) -> None:
        self.dataset, self.processor, self.seed, self.rank = dataset, processor, seed, rank

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, batch: MicroBatch) -> dict[str, Any]:
        words = np.random.SeedSequence([self.seed, batch.step, batch.micro_step, self.rank]).generate_state(2)
        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also queue a CUDA seeding,
            # which records a stack trace on every call.
            torch.default_generator.manual_seed(int(words[0]))
            np.random.seed(int(words[1]))
            random.seed(int(words[1]))
            try:
                return self.processor.collate([self.processor(self.dataset[index]) for _, index in batch.keys])
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    return batch  # items are already collated (a module-level function: workers pickle it)


def build_dataloader(
    dataset: Any,
    processor: Any,
    sampler: GlobalBatchSampler,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader that yields `sampler`'s micro-batches for this rank, collated."""
    return DataLoader(
        ProcessedBatches(dataset, processor, seed, sampler.rank),
        sampler=sampler,
        batch_size=None,
        collate_fn=_as_is,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )
