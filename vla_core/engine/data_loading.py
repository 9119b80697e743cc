"""From a dataset and a processor to this rank's micro-batches.

Per-sample randomness (augmentations in a processor) is seeded by (seed, epoch, index)
inside a forked RNG, so it does not depend on worker count, on which worker processed
a sample, or on where a run was resumed, and it never disturbs the model's RNG.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vla_core.engine.sampler import GlobalBatchSampler


class ProcessedDataset(Dataset):
    """`dataset[i]` through `processor`, keyed by `(epoch, i)`.

    Args:
        dataset: returns raw samples (images, state, actions, task, ...).
        processor: raw sample -> unbatched model inputs.
        seed: the run's seed.
    """

    def __init__(self, dataset: Any, processor: Callable[[dict[str, Any]], dict[str, Any]], seed: int) -> None:
        self.dataset, self.processor, self.seed = dataset, processor, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        seed_words = np.random.SeedSequence([self.seed, epoch, index]).generate_state(2)
        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also queue a CUDA seeding,
            # which records a stack trace each call (milliseconds per sample).
            torch.default_generator.manual_seed(int(seed_words[0]))
            np.random.seed(int(seed_words[1]))
            random.seed(int(seed_words[1]))
            try:
                return self.processor(self.dataset[index])
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)


def build_dataloader(
    dataset: Any,
    processor: Any,
    sampler: GlobalBatchSampler,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over `sampler`'s micro-batches, collated by `processor.collate`."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        ProcessedDataset(dataset, processor, seed),
        batch_sampler=sampler,
        collate_fn=processor.collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=False,
    )
