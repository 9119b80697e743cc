"""vla_core.testing.check_dataset: LeRobotDataset and the synthetic dataset pass; broken samples fail."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import SyntheticRobotDataset

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.testing import check_dataset


def test_lerobot_dataset_passes_with_a_fitted_processor(lerobot_root):
    check_dataset(LeRobotDataset(str(lerobot_root), chunk_size=4))


def test_a_dataset_without_an_embodiment_gets_the_raw_sample_checks():
    check_dataset(SyntheticRobotDataset(chunk_size=4))


class _Altered(SyntheticRobotDataset):
    """The synthetic dataset with one key of every sample changed by `alter`."""

    def __init__(self, alter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alter = alter

    def __getitem__(self, index):
        sample = super().__getitem__(index)
        self.alter(sample)
        return sample


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (lambda s: s["images"].update({k: v.astype(np.float32) for k, v in s["images"].items()}), "must be uint8"),
        (lambda s: s.pop("task"), r"has no \['task'\]"),
        (lambda s: s.update(actions=s["actions"][:2]), "chunk_size is 4"),
        (lambda s: s.update(action_is_pad=np.ones(4, dtype=bool)), "never padding"),
        (lambda s: s.update(state=np.full(3, np.nan, np.float32)), "finite float"),
    ],
    ids=["float-images", "no-task", "short-chunk", "all-padding", "nan-state"],
)
def test_broken_samples_fail(alter, message):
    with pytest.raises(AssertionError, match=message):
        check_dataset(_Altered(alter, chunk_size=4))


def test_an_empty_dataset_fails():
    with pytest.raises(AssertionError, match="empty"):
        check_dataset(SyntheticRobotDataset(num_episodes=0))
