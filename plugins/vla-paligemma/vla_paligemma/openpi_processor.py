"""`OpenPIProcessor` (group vla.processors): openpi's input and output transforms for pi0 / pi0.5.

The chain `openpi.policies.policy_config.create_trained_policy` builds, step by step:

    raw observation {"images": {camera: uint8 (H, W, 3)}, "task": str, "state": (S,)}
      -> camera slots base_0_rgb / left_wrist_0_rgb / right_wrist_0_rgb, absent = black, mask False
      -> Normalize(norm_stats, use_quantiles)      state (and actions in training)
      -> InjectDefaultPrompt, ResizeImages(224, 224), TokenizePrompt(PaligemmaTokenizer(max_token_len),
         discrete_state_input=pi0.5), PadStatesAndActions(action_dim)
      -> Observation.from_dict: uint8 -> [-1, 1]
    model actions (T, action_dim) -> Unnormalize -> the robot's first `action_dim` dims

(openpi `src/openpi/policies/policy_config.py`, `transforms.py`, `models/tokenizer.py`,
`models/model.py`, `openpi_client/image_tools.py`; the robot's own input/output transforms,
e.g. `LiberoInputs` / `LiberoOutputs`, become the `cameras` map and `action_dim`.) A checkpoint
records `processor: {type: OpenPIProcessor, ...}` and saves `processor/` (settings,
norm_stats.json, the tokenizer file), so it reloads with the same steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vla_core.data.processor_files import PROCESSOR_DIR, read_processor_config, write_processor_config
from vla_core.data.schema import collate as collate_samples
from vla_core.errors import ConfigError, DataError
from vla_paligemma.openpi_images import IMAGE_KEYS, parse_image, resize_with_pad, to_model_range
from vla_paligemma.openpi_norm_stats import (
    NORM_STATS_FILE,
    NormStats,
    normalize,
    read_norm_stats,
    unnormalize,
    write_norm_stats,
)
from vla_paligemma.openpi_tokenizer import PaligemmaPromptTokenizer

TOKENIZER_FILE = "tokenizer.model"
FORMAT_VERSION = 1


class OpenPIProcessor:
    """Raw observation -> pi0 / pi0.5 inputs as openpi prepares them; model actions -> robot units.

    Args:
        model_type: "pi0" (z-score statistics, prompt `BOS task \\n`, 48 tokens) or "pi05" (quantile statistics,
            the state written into the prompt, 200 tokens).
        tokenizer: the PaliGemma SentencePiece model: a `.model` file or a directory holding
            `paligemma_tokenizer.model` or `tokenizer.model`.
        norm_stats: openpi's `norm_stats.json` (the file or its directory); None = computed by fit(dataset).
        cameras: {openpi slot: camera key of the observation or None}; a slot mapped to None is always absent
            (black, masked). None = the observation's camera keys are the slot names, and a slot it lacks is absent.
        max_token_len: prompt tokens after padding; None = openpi's default (pi0: 48, pi0.5: 200).
        discrete_state_input: pi0.5 writes the state into the prompt; None = openpi's default (True for pi0.5;
            openpi's `pi05_libero` sets False: pi0's prompt, no state).
        use_quantiles: None = openpi's default (pi0: False, pi0.5: True).
        model_action_dim: the model's state/action width (openpi `action_dim`, 32); both are zero-padded to it.
        action_dim: robot action dims returned (the output transform's `[..., :action_dim]`); None = the
            width of the action statistics.
        chunk_size: actions per training sample (openpi `action_horizon`).
        image_size: openpi's model image resolution (224).
        default_prompt: used when an observation has no task (`InjectDefaultPrompt`).
    """

    def __init__(
        self,
        model_type: Literal["pi0", "pi05"] = "pi0",
        tokenizer: str | None = None,
        norm_stats: str | None = None,
        cameras: dict[str, str | None] | None = None,
        max_token_len: int | None = None,
        discrete_state_input: bool | None = None,
        use_quantiles: bool | None = None,
        model_action_dim: int = 32,
        action_dim: int | None = None,
        chunk_size: int = 50,
        image_size: int = 224,
        default_prompt: str | None = None,
    ) -> None:
        if model_type not in ("pi0", "pi05"):
            raise ConfigError(f"is {model_type!r}; use 'pi0' or 'pi05'.", "processor.model_type")
        if tokenizer is None:
            raise ConfigError(
                "is missing: openpi's prompts go through the PaliGemma SentencePiece tokenizer; give the local path of "
                "paligemma_tokenizer.model (or a directory holding it or tokenizer.model).",
                "processor.tokenizer",
            )
        unknown = sorted(set(cameras or {}) - set(IMAGE_KEYS))
        if unknown:
            raise ConfigError(f"names {unknown}; openpi's camera slots are {list(IMAGE_KEYS)}.", "processor.cameras")
        self.model_type = model_type
        self.pi05 = model_type == "pi05"
        self.discrete_state_input = self.pi05 if discrete_state_input is None else discrete_state_input
        if self.discrete_state_input and not self.pi05:
            raise ConfigError("is true, but only pi0.5 reads the state from the prompt; set model_type: pi05.",
                              "processor.discrete_state_input")
        self.max_token_len = max_token_len or (200 if self.pi05 else 48)
        self.use_quantiles = self.pi05 if use_quantiles is None else use_quantiles
        self.camera_map = dict(cameras) if cameras is not None else None
        self.model_action_dim, self.chunk_size = model_action_dim, chunk_size
        self.image_size = (image_size, image_size)  # (H, W), as VLAProcessor's
        self.default_prompt = default_prompt
        self.tokenizer = PaligemmaPromptTokenizer(tokenizer, self.max_token_len)
        self.norm_stats: dict[str, NormStats] | None = None if norm_stats is None else read_norm_stats(norm_stats)
        self._action_dim = action_dim
        self.config: dict[str, Any] = {
            "model_type": model_type, "cameras": self.camera_map, "max_token_len": self.max_token_len,
            "discrete_state_input": self.discrete_state_input,
            "use_quantiles": self.use_quantiles, "model_action_dim": model_action_dim, "action_dim": action_dim,
            "chunk_size": chunk_size, "image_size": image_size, "default_prompt": default_prompt,
        }
        if self.norm_stats is not None:
            self._check_stats()

    # ---- what it knows -------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.norm_stats is not None

    @property
    def cameras(self) -> list[str]:
        """The observation's camera keys, in prefix order: the mapped ones, or the slot names without a map."""
        if self.camera_map is None:
            return list(IMAGE_KEYS)
        return [self.camera_map[slot] for slot in IMAGE_KEYS if self.camera_map.get(slot) is not None]

    @property
    def max_action_dim(self) -> int:
        """The model's action width (the noise is (chunk_size, max_action_dim))."""
        return self.model_action_dim

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def state_dim(self) -> int:
        return self._stats()["state"].dim

    @property
    def action_dim(self) -> int:
        return self._action_dim or self._stats()["actions"].dim

    def _stats(self) -> dict[str, NormStats]:
        if self.norm_stats is None:
            raise DataError(
                "this OpenPIProcessor has no normalisation statistics: give norm_stats (openpi's norm_stats.json), "
                "call fit(dataset), or load it with OpenPIProcessor.from_pretrained(checkpoint_dir)."
            )
        return self.norm_stats

    def _check_stats(self) -> None:
        stats = self._stats()
        for key in ("state", "actions"):
            if stats[key].dim > self.model_action_dim:
                raise DataError(
                    f"the {key} statistics have {stats[key].dim} dims but the model takes {self.model_action_dim} "
                    "(model_action_dim); they belong to another robot or model."
                )
        if self._action_dim is not None and self._action_dim > self.model_action_dim:
            raise ConfigError(f"is {self._action_dim}, more than model_action_dim {self.model_action_dim}.",
                              "processor.action_dim")

    # ---- raw -> model inputs ---------------------------------------------------------------
    def __call__(self, raw: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One raw observation (or training sample) -> unbatched tensors: images (3, 3, 224, 224) in
        [-1, 1], img_masks (3,), lang_tokens / lang_masks (max_token_len,), states (model_action_dim,),
        embodiment_id (); with "actions" (T, A) also actions (T, model_action_dim) and action_masks (T,)."""
        stats = self._stats()
        images, img_masks = self.images(raw.get("images") or {})
        task = raw.get("task", self.default_prompt)
        if task is None:
            raise DataError("the observation has no 'task' (the instruction) and the processor has no default_prompt.")
        if "state" not in raw:
            raise DataError(f"the observation has no 'state' ({stats['state'].dim} values).")
        state = np.asarray(raw["state"], dtype=np.float64)
        if state.ndim != 1:
            raise DataError(f"'state' has shape {state.shape}; openpi's pi0 / pi0.5 take one (state_dim,) vector.")
        state = normalize(state, stats["state"], self.use_quantiles, "state")
        lang_tokens, lang_masks = self.tokenizer.tokenize(str(task), state if self.discrete_state_input else None)
        out = {
            "images": images,
            "img_masks": img_masks,
            "lang_tokens": lang_tokens,
            "lang_masks": lang_masks,
            "states": self._pad(state, "state"),
            "embodiment_id": torch.tensor(0, dtype=torch.int64),
        }
        if raw.get("actions") is not None:
            actions = np.asarray(raw["actions"], dtype=np.float64)
            if actions.ndim != 2 or actions.shape[0] != self.chunk_size:
                raise DataError(f"'actions' has shape {actions.shape}; expected (chunk_size={self.chunk_size}, A).")
            out["actions"] = self._pad(normalize(actions, stats["actions"], self.use_quantiles, "actions"), "actions")
            is_pad = raw.get("action_is_pad")
            pad = np.zeros(self.chunk_size, dtype=bool) if is_pad is None else np.asarray(is_pad, dtype=bool)
            out["action_masks"] = torch.from_numpy(~pad.reshape(self.chunk_size))
        return out

    def images(self, frames: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """{camera: frame} -> (3, 3, 224, 224) float32 in [-1, 1] in slot order, (3,) bool present."""
        wanted = self.camera_map if self.camera_map is not None else {slot: slot for slot in IMAGE_KEYS}
        used = {key for key in wanted.values() if key is not None}
        unknown = sorted(set(frames) - used)
        if unknown:
            raise DataError(
                f"the observation has cameras {unknown} that no openpi slot reads (slots: {wanted}); name them "
                f"{list(IMAGE_KEYS)} or map them with the processor's `cameras`."
            )
        out, masks = [], []
        for slot in IMAGE_KEYS:
            key = wanted.get(slot)
            if key is not None and key not in frames and self.camera_map is not None:
                raise DataError(f"the observation has no image '{key}' (slot {slot}); it has {sorted(frames)}.")
            if key is None or key not in frames:
                image = np.zeros((*self.image_size, 3), dtype=np.uint8)
                masks.append(False)
            else:
                image = resize_with_pad(parse_image(frames[key], key), *self.image_size)
                masks.append(True)
            out.append(to_model_range(image))
        if not any(masks):
            raise DataError(f"the observation has no camera image for any openpi slot ({wanted}).")
        return torch.from_numpy(np.stack(out)), torch.tensor(masks)

    def _pad(self, values: np.ndarray, what: str) -> torch.Tensor:
        """PadStatesAndActions: zero-pad the last dim to model_action_dim -> float32."""
        if values.shape[-1] > self.model_action_dim:
            raise DataError(
                f"the {what} has {values.shape[-1]} dims, more than model_action_dim {self.model_action_dim}."
            )
        pad = [(0, 0)] * (values.ndim - 1) + [(0, self.model_action_dim - values.shape[-1])]
        return torch.from_numpy(np.pad(values, pad).astype(np.float32))

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_samples(samples)

    # ---- model outputs -> robot units ------------------------------------------------------
    def normalize_actions(self, actions: Any) -> torch.Tensor:
        """(..., A) robot units -> (..., model_action_dim) normalised, zero-padded."""
        normalised = normalize(np.asarray(actions, dtype=np.float64), self._stats()["actions"], self.use_quantiles,
                               "actions")
        return self._pad(normalised, "actions")

    def unnormalize_actions(self, actions: Any) -> np.ndarray:
        """(..., model_action_dim) model output -> (..., action_dim) float64 robot units (openpi `Unnormalize`,
        then the output transform's cut to the robot's dims)."""
        x = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        return unnormalize(x, self._stats()["actions"], self.use_quantiles)[..., : self.action_dim]

    # ---- fitting (fine-tuning on a LeRobot dataset) ---------------------------------------
    def fit(self, dataset: Any) -> OpenPIProcessor:
        """openpi's statistics of the dataset's state and actions (mean, std, q01, q99 per dim, the
        features concatenated in embodiment order); checks the camera map against its cameras."""
        from vla_core.data.stats import DatasetStatistics

        if getattr(dataset, "chunk_size", self.chunk_size) != self.chunk_size:
            raise DataError(
                f"the dataset gives chunks of {dataset.chunk_size} actions but the processor expects "
                f"chunk_size={self.chunk_size}; set the same chunk_size in `data` and `model.processor`."
            )
        cameras = list(dataset.embodiment.cameras or [])
        wanted = self.camera_map if self.camera_map is not None else {slot: slot for slot in IMAGE_KEYS}
        missing = sorted(k for k in wanted.values() if k is not None and k not in cameras)
        if missing and (self.camera_map is not None or not set(cameras) & set(IMAGE_KEYS)):
            raise DataError(
                f"the dataset's cameras are {cameras}; map them to openpi's slots with the processor's cameras, "
                f"e.g. cameras: {{base_0_rgb: {cameras[0] if cameras else '...'}, left_wrist_0_rgb: ..., "
                "right_wrist_0_rgb: null}."
            )
        mode = "q01_q99" if self.use_quantiles else "mean_std"
        statistics = DatasetStatistics.from_dataset(dataset, modes={"state": mode, "action": mode})
        stats = {}
        for role, key in (("state", "state"), ("action", "actions")):
            features = statistics.role(role)
            joined = {name: [np.asarray(f.stats[name], dtype=np.float64) for f in features if name in f.stats]
                      for name in ("mean", "std", "q01", "q99")}
            stats[key] = NormStats(**{
                name: np.concatenate(parts) if len(parts) == len(features) else None for name, parts in joined.items()
            })
        self.norm_stats = stats
        self._check_stats()
        return self

    # ---- saving -------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `directory/processor/`: processor_config.json, norm_stats.json (openpi's layout) and the
        tokenizer file; replaced atomically."""
        from vla_core.atomic import atomic_directory

        stats = self._stats()
        directory = Path(directory)
        with atomic_directory(directory / PROCESSOR_DIR) as tmp:
            write_processor_config(tmp, self, FORMAT_VERSION, self.config)
            write_norm_stats(tmp / NORM_STATS_FILE, stats)
            (tmp / TOKENIZER_FILE).write_bytes(self.tokenizer.model_proto)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> OpenPIProcessor:
        """Load what `save_pretrained` wrote into a checkpoint directory."""
        folder = Path(directory) / PROCESSOR_DIR
        config = read_processor_config(directory, FORMAT_VERSION, "vla-paligemma")["config"]
        return cls(**config, tokenizer=str(folder / TOKENIZER_FILE), norm_stats=str(folder / NORM_STATS_FILE))

    def __repr__(self) -> str:
        fitted = f", state_dim={self.state_dim}, action_dim={self.action_dim}" if self.is_fitted else ""
        return f"OpenPIProcessor(model_type={self.model_type!r}, max_token_len={self.max_token_len}{fitted})"
