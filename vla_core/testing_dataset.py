"""The dataset contract check (re-exported by vla_core.testing).

A `vla.datasets` component yields *raw* samples (docs/data.md): camera images as uint8
(H, W, 3), `state` (state_dim,), `actions` (T, action_dim) with `action_is_pad` (T,),
`task`. A dataset the stock `VLAProcessor` can fit also has `embodiment`, `features`,
`stats`, `iter_column(key)`, `fingerprint`, `tasks` and `chunk_size`, like LeRobotDataset.
"""

from __future__ import annotations

from typing import Any


def _check_raw_sample(sample: Any, index: int, chunk_size: int | None) -> None:
    """One raw sample's keys, dtypes and shapes."""
    import numpy as np

    where = f"dataset[{index}]"
    assert isinstance(sample, dict), f"{where} must be a dict (a raw sample), got {type(sample).__name__}"
    missing = [k for k in ("images", "state", "actions", "action_is_pad", "task") if k not in sample]
    assert not missing, f"{where} has no {missing} (raw sample keys: images, state, actions, action_is_pad, task)"
    images = sample["images"]
    assert isinstance(images, dict) and images, f"{where}['images'] must be a non-empty {{camera: image}} dict"
    for camera, image in images.items():
        image = np.asarray(image)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3, (
            f"{where}['images'][{camera!r}] must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    state = np.asarray(sample["state"])
    assert state.ndim == 1 and np.issubdtype(state.dtype, np.floating) and np.isfinite(state).all(), (
        f"{where}['state'] must be a finite float (state_dim,) array, got {state.dtype} {state.shape}")
    actions, pad = np.asarray(sample["actions"]), np.asarray(sample["action_is_pad"])
    assert actions.ndim == 2 and np.issubdtype(actions.dtype, np.floating), (
        f"{where}['actions'] must be a float (T, action_dim) array, got {actions.dtype} {actions.shape}")
    assert np.isfinite(actions).all(), f"{where}['actions'] has non-finite values"
    if chunk_size is not None:
        assert actions.shape[0] == chunk_size, (
            f"{where}['actions'] has {actions.shape[0]} steps; chunk_size is {chunk_size}")
    assert pad.dtype == np.bool_ and pad.shape == (actions.shape[0],), (
        f"{where}['action_is_pad'] must be bool (T,) = ({actions.shape[0]},), got {pad.dtype} {pad.shape}")
    assert not pad[0], f"{where}['action_is_pad'][0] is True: the current step's action is never padding"
    assert isinstance(sample["task"], str) and sample["task"], f"{where}['task'] must be the instruction string"


def check_dataset(dataset: Any, num_samples: int = 4, image_size: int = 16) -> None:
    """The dataset contract: `len(dataset) > 0`; `dataset[i]` is a raw sample (see the module
    docstring) for the first and last `num_samples` indices, with T = `dataset.chunk_size` when it
    has one; and, when the dataset has an `embodiment`, a `VLAProcessor` fits it (statistics,
    word vocabulary) and turns its samples into a batch that follows the sample schema
    (`vla_core.data.schema.check_batch`), with images resized to `image_size`."""
    length = len(dataset)
    assert length > 0, "the dataset is empty"
    chunk_size = getattr(dataset, "chunk_size", None)
    indices = sorted({*range(min(num_samples, length)), *range(max(0, length - num_samples), length)})
    samples = [dataset[i] for i in indices]
    for index, sample in zip(indices, samples, strict=True):
        _check_raw_sample(sample, index, chunk_size)
    if getattr(dataset, "embodiment", None) is None:
        return

    from vla_core.data.processor import VLAProcessor
    from vla_core.data.schema import check_batch

    embodiment = dataset.embodiment
    processor = VLAProcessor(image_size=image_size, max_state_dim=embodiment.state_dim,
                             max_action_dim=embodiment.action_dim, chunk_size=chunk_size or len(samples[0]["actions"]))
    processor.fit(dataset)
    batch = processor.collate([processor(sample) for sample in samples])
    check_batch(batch)
    assert tuple(batch["images"].shape[1:]) == (len(embodiment.cameras), 3, image_size, image_size), (
        f"the processed images are {tuple(batch['images'].shape)}; the embodiment has cameras {embodiment.cameras}")
