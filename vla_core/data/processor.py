"""`VLAProcessor` (group vla.processors): the one path from a raw observation to model inputs.

Training, `predict`, `serve` and `eval` all go through it, and actions leave through its
`unnormalize_actions`::

    processor = VLAProcessor(image_size=224, max_state_dim=32, max_action_dim=32, chunk_size=50)
    processor.fit(dataset)                      # normalisation stats + word vocabulary
    sample = processor(dataset[0])              # unbatched tensors in the sample schema
    batch = processor.collate([sample, ...])    # vla(**batch)
    actions = processor.unnormalize_actions(vla.predict_action(**obs_batch))  # (B, T, action_dim)
    processor.save_pretrained(checkpoint_dir)   # processor/ + dataset_statistics.json
    processor = VLAProcessor.from_pretrained(checkpoint_dir)

A raw sample (from LeRobotDataset) or observation (from a robot/env) is
`{"images": {camera: uint8 (H, W, 3)}, "task": str, "state": (state_dim,)}` plus, for
training, `"actions": (T, action_dim)` and `"action_is_pad": (T,)`. Images may also be float
in [0, 1], HWC or CHW (lerobot's convention).

With observation history the raw sample has `"observation_is_pad": (T_obs,)`, its images are
(T_obs, H, W, 3) (or (T_obs, 3, H, W)) and its state (T_obs, state_dim); the processed sample
then has images (T_obs, N_cam, 3, H, W), img_masks (T_obs, N_cam), states (T_obs,
max_state_dim) and obs_masks (T_obs,) = not padded (vla_core.data.schema).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from vla_core.data.embodiment import EmbodimentSpec, NormMode
from vla_core.data.processor_files import CONFIG_FILE, PROCESSOR_DIR, read_processor_config, write_processor_config
from vla_core.data.schema import collate as collate_samples
from vla_core.data.stats import STATS_FILE, DatasetStatistics
from vla_core.data.tokenizers import HF_DIR, HFTokenizer, WordTokenizer
from vla_core.errors import CheckpointError, DataError

FORMAT_VERSION = 1


class VLAProcessor:
    """Raw observation -> model inputs (resized, normalised images; tokens; normalised,
    padded state and actions), and model actions -> robot units.

    Args:
        image_size: output image size, an int (square) or [H, W].
        image_mean: per-channel mean subtracted after scaling to [0, 1] (one value or three).
        image_std: per-channel std divided by; 0.5/0.5 maps to [-1, 1] as SigLIP/PaliGemma expect.
        resize_with_pad: keep the aspect ratio and pad (centred, black) instead of stretching.
        tokenizer: "word" for a word-level vocabulary built from the dataset's task strings, or a
            local directory holding a Hugging Face tokenizer.
        max_lang_len: instruction tokens (padded/truncated to this length).
        prompt_template: how the task string becomes the prompt, e.g. "{task}\\n" for PaliGemma.
        max_state_dim: the model's state size; the state is zero-padded to it.
        max_action_dim: the model's action size; actions are zero-padded to it.
        chunk_size: actions per sample (T); must match the dataset's chunk size.
        state_norm: normalisation of every state feature; None = the embodiment spec's per-feature modes.
        action_norm: normalisation of every action feature; None = the embodiment spec's modes.
        stats_source: "auto" (dataset metadata when it has what the modes need, else computed),
            "dataset" or "compute".
        allow_missing_cameras: a camera missing from an observation becomes a zero image with
            img_mask False instead of an error.
    """

    def __init__(
        self,
        image_size: int | list[int] = 224,
        image_mean: float | list[float] = 0.5,
        image_std: float | list[float] = 0.5,
        resize_with_pad: bool = False,
        tokenizer: str = "word",
        max_lang_len: int = 32,
        prompt_template: str = "{task}",
        max_state_dim: int = 32,
        max_action_dim: int = 32,
        chunk_size: int = 1,
        state_norm: NormMode | None = None,
        action_norm: NormMode | None = None,
        stats_source: Literal["auto", "dataset", "compute"] = "auto",
        allow_missing_cameras: bool = False,
    ) -> None:
        self.config: dict[str, Any] = {
            "image_size": image_size,
            "image_mean": image_mean,
            "image_std": image_std,
            "resize_with_pad": resize_with_pad,
            "tokenizer": tokenizer,
            "max_lang_len": max_lang_len,
            "prompt_template": prompt_template,
            "max_state_dim": max_state_dim,
            "max_action_dim": max_action_dim,
            "chunk_size": chunk_size,
            "state_norm": state_norm,
            "action_norm": action_norm,
            "stats_source": stats_source,
            "allow_missing_cameras": allow_missing_cameras,
        }
        size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        if len(size) != 2 or min(size) < 1:
            raise DataError(f"image_size must be an int or [H, W], got {image_size!r}.")
        self.image_size = (int(size[0]), int(size[1]))
        self.image_mean = _per_channel(image_mean, "image_mean")
        self.image_std = _per_channel(image_std, "image_std")
        if (self.image_std <= 0).any():
            raise DataError(f"image_std must be positive, got {image_std!r}.")
        self.resize_with_pad = resize_with_pad
        self.max_lang_len, self.prompt_template = max_lang_len, prompt_template
        self.max_state_dim, self.max_action_dim, self.chunk_size = max_state_dim, max_action_dim, chunk_size
        self.state_norm, self.action_norm, self.stats_source = state_norm, action_norm, stats_source
        self.allow_missing_cameras = allow_missing_cameras
        self.tokenizer: WordTokenizer | HFTokenizer | None = None if tokenizer == "word" else HFTokenizer(tokenizer)
        self.embodiment: EmbodimentSpec | None = None
        self.statistics: DatasetStatistics | None = None
        self._affine: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, dataset: Any) -> VLAProcessor:
        """Learn what the dataset determines: its embodiment (cameras, keys, dims), the
        normalisation statistics and, for tokenizer "word", the vocabulary."""
        if getattr(dataset, "chunk_size", self.chunk_size) != self.chunk_size:
            raise DataError(
                f"the dataset gives chunks of {dataset.chunk_size} actions but the processor (model) expects "
                f"chunk_size={self.chunk_size}; set the same chunk_size in `data` and `model.processor`."
            )
        embodiment: EmbodimentSpec = dataset.embodiment
        embodiment.check_max_dims(self.max_state_dim, self.max_action_dim, "the processor's (model's)")
        modes = {k: v for k, v in (("state", self.state_norm), ("action", self.action_norm)) if v is not None}
        statistics = DatasetStatistics.from_dataset(dataset, modes=modes, stats_source=self.stats_source)
        if self.config["tokenizer"] == "word":
            self.tokenizer = WordTokenizer.build(self.prompt(task) for task in dataset.tasks)
        self._set_fitted(embodiment, statistics)
        return self

    def _set_fitted(self, embodiment: EmbodimentSpec, statistics: DatasetStatistics) -> None:
        self.embodiment, self.statistics = embodiment, statistics
        self._affine = {
            role: tuple(torch.as_tensor(a, dtype=torch.float64) for a in statistics.affine(role))  # type: ignore[misc]
            for role in ("state", "action")
        }

    @property
    def is_fitted(self) -> bool:
        return self.statistics is not None and self.tokenizer is not None

    @property
    def cameras(self) -> list[str]:
        return list(self._fitted().cameras or [])

    @property
    def vocab_size(self) -> int:
        """Token ids are in [0, vocab_size); the language model's vocabulary must be at least this."""
        if self.tokenizer is None:
            raise DataError("the word vocabulary is built by fit(dataset); call it first.")
        return self.tokenizer.vocab_size

    @property
    def action_dim(self) -> int:
        return self._stats().action_dim

    @property
    def state_dim(self) -> int:
        return self._stats().state_dim

    def prompt(self, task: str) -> str:
        return self.prompt_template.format(task=task)

    def _fitted(self) -> EmbodimentSpec:
        if self.embodiment is None or not self.is_fitted:
            raise DataError(
                "this VLAProcessor is not fitted: call processor.fit(dataset) (training) or load it with "
                "VLAProcessor.from_pretrained(checkpoint_dir)."
            )
        return self.embodiment

    def _stats(self) -> DatasetStatistics:
        self._fitted()
        assert self.statistics is not None
        return self.statistics

    def check_dataset(self, dataset: Any) -> None:
        """Raise DataError when `dataset`'s state/action features differ from the ones this
        processor was fitted on (e.g. predicting from another robot's data)."""
        where = f"the dataset at '{getattr(dataset, 'root', dataset)}'"
        self._stats().validate_against(dataset.embodiment.layout(), what=where)

    # ---- raw -> model inputs ----------------------------------------------------------------
    def __call__(self, raw: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One raw sample/observation -> unbatched tensors: images (N_cam, 3, H, W), img_masks
        (N_cam,), lang_tokens/lang_masks (L,), states (max_state_dim,), embodiment_id (); with
        actions in `raw` also actions (T, max_action_dim) and action_masks (T,)."""
        embodiment = self._fitted()
        history = raw.get("observation_is_pad")
        if history is None:
            images, img_masks = self.images(raw.get("images") or {})
        else:
            images, img_masks = self.history_images(raw.get("images") or {}, len(history))
        if "task" not in raw:
            raise DataError("the observation has no 'task' (the instruction string).")
        assert self.tokenizer is not None
        lang_tokens, lang_masks = self.tokenizer.encode(self.prompt(str(raw["task"])), self.max_lang_len)
        if "state" not in raw:
            raise DataError(f"the observation has no 'state' ({self.state_dim} values: {embodiment.state_keys}).")
        states = self._normalize(raw["state"], "state", self.max_state_dim)
        expected_rank = 1 if history is None else 2
        if states.ndim != expected_rank or (history is not None and states.shape[0] != len(history)):
            what = "(state_dim,)" if history is None else f"(T_obs={len(history)}, state_dim) with history"
            raise DataError(f"'state' has shape {tuple(np.shape(raw['state']))}; expected {what}.")
        out = {
            "images": images,
            "img_masks": img_masks,
            "lang_tokens": lang_tokens,
            "lang_masks": lang_masks,
            "states": states,
            "embodiment_id": torch.tensor(int(raw.get("embodiment_id", embodiment.embodiment_id)), dtype=torch.int64),
        }
        if history is not None:
            out["obs_masks"] = ~torch.as_tensor(np.asarray(history, dtype=bool))
        if raw.get("actions") is not None:
            actions = _as_float64(raw["actions"], "actions")
            if actions.ndim != 2 or actions.shape[0] != self.chunk_size:
                raise DataError(
                    f"'actions' has shape {tuple(actions.shape)}; expected (chunk_size={self.chunk_size}, "
                    f"{self.action_dim})."
                )
            out["actions"] = self._normalize(actions, "action", self.max_action_dim)
            is_pad = raw.get("action_is_pad")
            pad = torch.zeros(self.chunk_size, dtype=torch.bool) if is_pad is None else torch.as_tensor(is_pad)
            out["action_masks"] = ~pad.to(torch.bool).reshape(self.chunk_size)
        return out

    def images(self, images: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """{camera: image} -> (N_cam, 3, H, W) float32 normalised, (N_cam,) bool present."""
        out, masks = [], []
        height, width = self.image_size
        for camera in self.cameras:
            image = images.get(camera)
            if image is None:
                if not self.allow_missing_cameras:
                    raise DataError(
                        f"the observation has no image for camera '{camera}' (it has {sorted(images)}). The model "
                        f"was trained with cameras {self.cameras}; set allow_missing_cameras to feed a blank image."
                    )
                out.append(torch.zeros(3, height, width))
                masks.append(False)
                continue
            pixels = self._resize(_to_float_chw(image, camera))
            out.append((pixels - self.image_mean[:, None, None]) / self.image_std[:, None, None])
            masks.append(True)
        if not out:
            return torch.zeros(0, 3, height, width), torch.zeros(0, dtype=torch.bool)
        return torch.stack(out).float(), torch.tensor(masks, dtype=torch.bool)

    def history_images(self, images: dict[str, Any], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """{camera: (T_obs, H, W, 3) or (T_obs, 3, H, W)} -> (T_obs, N_cam, 3, H, W) float32
        normalised, (T_obs, N_cam) bool present; each frame goes through `images`."""
        for camera, frames in images.items():
            if np.ndim(frames) != 4 or len(frames) != length:
                raise DataError(
                    f"with observation history every image must be (T_obs={length}, H, W, 3) or (T_obs, 3, H, W); "
                    f"camera '{camera}' has shape {tuple(np.shape(frames))}."
                )
        per_frame = [self.images({camera: frames[t] for camera, frames in images.items()}) for t in range(length)]
        return torch.stack([f[0] for f in per_frame]), torch.stack([f[1] for f in per_frame])

    def _resize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(3, h, w) in [0, 1] -> (3, H, W): bilinear with antialiasing (or fit + centred pad)."""
        height, width = self.image_size
        h, w = pixels.shape[-2:]
        if (h, w) == (height, width):
            return pixels
        if not self.resize_with_pad:
            return F.interpolate(pixels[None], size=(height, width), mode="bilinear", antialias=True)[0].clamp(0, 1)
        ratio = min(height / h, width / w)
        new_h, new_w = max(1, round(h * ratio)), max(1, round(w * ratio))
        resized = F.interpolate(pixels[None], size=(new_h, new_w), mode="bilinear", antialias=True)[0].clamp(0, 1)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        return F.pad(resized, (left, width - new_w - left, top, height - new_h - top), value=0.0)

    def _normalize(self, values: Any, role: str, max_dim: int) -> torch.Tensor:
        """(..., role_dim) in robot units -> (..., max_dim) float32 normalised, zero-padded."""
        offset, scale = self._affine[role]
        x = _as_float64(values, role)
        if x.shape[-1] != len(offset):
            keys = self._fitted().state_keys if role == "state" else self._fitted().action_keys
            raise DataError(
                f"the {role} has {x.shape[-1]} values but the processor was fitted on {len(offset)} "
                f"({' + '.join(keys)}); the observation does not match the model's embodiment."
            )
        normalized = ((x - offset) / scale).to(torch.float32)
        return F.pad(normalized, (0, max_dim - normalized.shape[-1]))

    def normalize_actions(self, actions: Any) -> torch.Tensor:
        """(..., action_dim) robot units -> (..., max_action_dim) normalised, zero-padded."""
        self._fitted()
        return self._normalize(actions, "action", self.max_action_dim)

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, T, max_action_dim) (or any (..., >= action_dim)) normalised model output ->
        (..., action_dim) in robot units (the padding dims are dropped), float32."""
        self._fitted()
        offset, scale = self._affine["action"]
        x = torch.as_tensor(actions)
        if x.shape[-1] < len(offset):
            raise DataError(f"actions have {x.shape[-1]} dims, fewer than the action_dim {len(offset)}.")
        x = x[..., : len(offset)].to(torch.float64)
        return (x * scale.to(x.device) + offset.to(x.device)).to(torch.float32)

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Stack processed samples into a batch (see vla_core.data.schema)."""
        return collate_samples(samples)

    # ---- saving ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `directory/processor/` (settings, embodiment, tokenizer) and
        `directory/dataset_statistics.json`. Each is replaced atomically."""
        from vla_core.atomic import atomic_directory

        embodiment, statistics = self._fitted(), self._stats()
        directory = Path(directory)
        with atomic_directory(directory / PROCESSOR_DIR) as tmp:
            config = dict(self.config)
            if not isinstance(self.tokenizer, WordTokenizer):
                config["tokenizer"] = HF_DIR  # loaded from processor/tokenizer/
            write_processor_config(tmp, self, FORMAT_VERSION, config, embodiment=embodiment.model_dump(mode="json"),
                                   vocab_size=self.vocab_size)
            assert self.tokenizer is not None
            self.tokenizer.save(tmp)
        stats_tmp = directory / f".{STATS_FILE}.tmp"
        statistics.save(stats_tmp)
        os.replace(stats_tmp, directory / STATS_FILE)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> VLAProcessor:
        """Load a processor saved by `save_pretrained` (a checkpoint directory); checks that the
        statistics match the processor's embodiment and max dims."""
        directory = Path(directory)
        config_path = directory / PROCESSOR_DIR / CONFIG_FILE
        payload = read_processor_config(directory, FORMAT_VERSION, "vla-core")
        config = payload["config"]
        try:
            embodiment = EmbodimentSpec.model_validate(payload["embodiment"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{config_path} is corrupt ({exc}); re-save the processor.") from None
        if config.get("tokenizer") != "word":
            config["tokenizer"] = str(directory / PROCESSOR_DIR / HF_DIR)
        processor = cls(**config)
        if processor.tokenizer is None:
            processor.tokenizer = WordTokenizer.load(directory / PROCESSOR_DIR)
        statistics = DatasetStatistics.load(directory / STATS_FILE)
        statistics.validate_against(
            embodiment.layout(),
            max_state_dim=processor.max_state_dim,
            max_action_dim=processor.max_action_dim,
            what=f"the checkpoint's processor ({config_path})",
        )
        processor._set_fitted(embodiment, statistics)
        return processor

    def __repr__(self) -> str:
        fitted = ""
        if self.is_fitted:
            fitted = f", cameras={self.cameras}, state_dim={self.state_dim}, action_dim={self.action_dim}"
        return f"VLAProcessor(image_size={list(self.image_size)}, max_lang_len={self.max_lang_len}{fitted})"


# ---- helpers ---------------------------------------------------------------------------------
def _per_channel(value: float | list[float], name: str) -> torch.Tensor:
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != 3:
        raise DataError(f"{name} must be one number or three (per RGB channel), got {value!r}.")
    return torch.tensor(values, dtype=torch.float32)


def _as_float64(values: Any, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise DataError(f"'{what}' is not numeric ({exc}).") from None


def _to_float_chw(image: Any, camera: str) -> torch.Tensor:
    """uint8 (H, W, 3) / float [0, 1] HWC or CHW (numpy or torch) -> float32 (3, H, W) in [0, 1]."""
    if isinstance(image, torch.Tensor):
        x = image
    else:
        array = np.ascontiguousarray(image)
        x = torch.from_numpy(array if array.flags.writeable else array.copy())
    if x.ndim != 3:
        raise DataError(f"image '{camera}' must be 3-D (H, W, 3) or (3, H, W), got shape {tuple(x.shape)}.")
    if x.shape[-1] in (1, 3) and x.shape[0] not in (1, 3):
        x = x.permute(2, 0, 1)
    elif x.shape[-1] in (1, 3) and x.shape[0] in (1, 3) and x.dtype == torch.uint8:
        x = x.permute(2, 0, 1)  # tiny ambiguous images: uint8 is HWC by convention
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    if x.shape[0] != 3:
        raise DataError(f"image '{camera}' must have 3 channels, got shape {tuple(x.shape)}.")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not torch.is_floating_point(x):
        raise DataError(f"image '{camera}' must be uint8 or float in [0, 1], got {x.dtype}.")
    return x.float()
