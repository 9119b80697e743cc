"""`OpenVLAProcessor` (group vla.processors): the released OpenVLA / OpenVLA-OFT pipeline around the model.

Raw observation -> model inputs, as openvla's / openvla-oft's `experiments/robot/openvla_utils.py`
`get_vla_action` and `PrismaticProcessor` prepare them; model actions -> robot units, as
`predict_action` un-normalises them::

    frame (uint8 H x W x 3) --[oft: JPEG round trip + lanczos3 to 224 when not 224]--
          --[center_crop: TF crop_and_resize of 0.9 of the area, to 224]--
          --PrismaticImageProcessor: PIL bicubic resize, centre crop, per-featurizer mean/std--> (6, 224, 224)
    task  --"In: What action should the robot take to {task.lower()}?\\nOut:"--LLaMA tokenizer (BOS)
          --append the empty token "▁" (29871) when the prompt does not end with it--> lang_tokens
    state --[oft with proprio: normalize_proprio (q01/q99 or min/max, mask, clip to [-1, 1])]--> states
    model actions (B, T, A) in [-1, 1] --mask ? 0.5 (a + 1) (high - low [+ 1e-8 oft]) + low : a--> robot units

The statistics are the checkpoint's `norm_stats` (`dataset_statistics.json`, else `config.json`);
`unnorm_key` picks the dataset (the only one by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vla_core.data.processor_files import CONFIG_FILE, PROCESSOR_DIR, read_processor_config, write_processor_config
from vla_core.data.tokenizers import HF_DIR, HFTokenizer
from vla_core.errors import CheckpointError, DataError
from vla_openvla.norm_stats import (
    Bounds,
    normalize_for_training,
    normalize_proprio,
    select_unnorm_key,
    unnormalize_actions,
)
from vla_openvla.prismatic_image_transform import PrismaticImageTransform
from vla_openvla.tf_image_ops import OPENVLA_IMAGE_SIZE, center_crop_and_resize, resize_like_rlds

PROMPT_TEMPLATE = "In: What action should the robot take to {task}?\nOut:"
#: LLaMA-2's "▁", the token the released predict_action appends after "Out:".
EMPTY_TOKEN = "\u2581"
LLAMA_EMPTY_TOKEN_ID = 29871
FORMAT_VERSION = 1

#: openvla-7b's released preprocessor_config.json settings (DINOv2 ImageNet + SigLIP 0.5, bicubic, 224).
OPENVLA_7B_IMAGE_PROCESSOR: dict[str, Any] = {
    "image_resize_strategy": "resize-naive",
    "input_sizes": [[3, 224, 224], [3, 224, 224]],
    "interpolations": ["bicubic", "bicubic"],
    "means": [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]],
    "stds": [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]],
}


class OpenVLAProcessor:
    """OpenVLA's (`variant: openvla`) or OpenVLA-OFT's (`variant: oft`) reference preprocessing and
    action un-normalisation.

    Args:
        variant: "openvla" (one image, discrete tokens, q01/q99) or "oft" (several cameras, proprio, chunks).
        tokenizer: local directory of the LLaMA-2 tokenizer (a released checkpoint directory holds one).
        image_processor: the checkpoint's `preprocessor_config.json` settings (PrismaticImageProcessor);
            null = openvla-7b's (resize-naive to 224, bicubic, DINOv2 + SigLIP normalisation).
        unnorm_key: the dataset whose statistics un-normalise actions (and normalise proprio); null =
            the only one (an error lists them when there are several).
        center_crop: evaluate with OFT's / OpenVLA's centre crop (`crop_scale` of the area, TF
            crop_and_resize back to 224), for models trained with random crops; null = the variant's
            evaluation default (oft: true, openvla: false).
        crop_scale: area of the centre crop.
        resize_like_rlds: OFT's `resize_image_for_policy` for frames that are not 224 x 224 (JPEG
            round trip, TF lanczos3 resize), as its training data was stored; null = the variant's
            default (oft: true, openvla: false; openvla's LIBERO/Bridge scripts do it before calling it).
        normalization: "bounds_q99" (q01/q99) or "bounds" (min/max, OFT's ALOHA); null = OFT's platform
            constant (bounds for 14-dim actions, else bounds_q99); OpenVLA always uses q01/q99.
        use_proprio: normalise `state` with the statistics' `proprio` and pass it (OFT's proprio projector).
        cameras: camera names in model order; null = the observation's images in their order
            (OFT: the third-person image first, then the wrist images).
        empty_token_id: appended to prompts not ending with it; null = the tokenizer's id of "▁" (29871).
        chunk_size: actions per prediction (OpenVLA: 1; OFT: NUM_ACTIONS_CHUNK), for evaluation and serving.
    """

    def __init__(
        self,
        variant: Literal["openvla", "oft"] = "openvla",
        tokenizer: str | None = None,
        image_processor: dict[str, Any] | None = None,
        unnorm_key: str | None = None,
        center_crop: bool | None = None,
        crop_scale: float = 0.9,
        resize_like_rlds: bool | None = None,
        normalization: Bounds | None = None,
        use_proprio: bool = False,
        cameras: list[str] | None = None,
        empty_token_id: int | None = None,
        chunk_size: int = 1,
    ) -> None:
        if variant not in ("openvla", "oft"):
            raise DataError(f"OpenVLAProcessor variant must be 'openvla' or 'oft', got {variant!r}.")
        if tokenizer is None:
            raise DataError("OpenVLAProcessor needs `tokenizer`: a local directory holding the LLaMA-2 tokenizer "
                            "(tokenizer.json / tokenizer.model), e.g. the released checkpoint directory.")
        if not 0.0 < crop_scale <= 1.0:
            raise DataError(f"crop_scale is the area kept by the centre crop, in (0, 1]; got {crop_scale}.")
        oft = variant == "oft"
        self.variant = variant
        self.image_processor = dict(image_processor or OPENVLA_7B_IMAGE_PROCESSOR)
        self.transform = PrismaticImageTransform.from_preprocessor_config(self.image_processor)
        self.unnorm_key = unnorm_key
        self.center_crop = oft if center_crop is None else center_crop
        self.crop_scale = crop_scale
        self.resize_like_rlds = oft if resize_like_rlds is None else resize_like_rlds
        self.normalization = normalization
        self.use_proprio = use_proprio
        self.camera_names = None if cameras is None else list(cameras)
        self.chunk_size = chunk_size
        self.tokenizer = HFTokenizer(tokenizer)
        if empty_token_id is None:
            empty_token_id = self.tokenizer.tokenizer.convert_tokens_to_ids(EMPTY_TOKEN)
            unknown = self.tokenizer.tokenizer.unk_token_id
            if empty_token_id is None or (unknown is not None and empty_token_id == unknown):
                raise DataError(f"the tokenizer at '{tokenizer}' has no '{EMPTY_TOKEN}' token (LLaMA-2's id "
                                f"{LLAMA_EMPTY_TOKEN_ID}); set empty_token_id.")
        self.empty_token_id = int(empty_token_id)
        self.norm_stats: dict[str, Any] | None = None

    # ---- statistics ------------------------------------------------------------------------
    def fit(self, dataset: Any) -> OpenVLAProcessor:
        """Statistics of a LeRobot training dataset in OpenVLA's format (q01/q99/min/max/mean/std of the
        concatenated state ("proprio") and action features, mask all true) under the embodiment's name,
        which becomes `unnorm_key`; the cameras are the embodiment's."""
        from vla_core.data.stats import DatasetStatistics

        statistics = DatasetStatistics.from_dataset(dataset, modes={"state": "q01_q99", "action": "q01_q99"})
        entry: dict[str, Any] = {}
        for role, name in (("action", "action"), ("state", "proprio")):
            features = statistics.role(role)
            if not features:
                continue
            merged = {k: np.concatenate([np.asarray(f.stats[k], dtype=np.float64).reshape(-1) for f in features])
                      for k in ("q01", "q99", "min", "max", "mean", "std")}
            entry[name] = {k: v.tolist() for k, v in merged.items()}
            entry[name]["mask"] = [True] * len(merged["q01"])
        embodiment = dataset.embodiment
        self.norm_stats = {embodiment.name: entry}
        self.unnorm_key = embodiment.name
        if self.camera_names is None:
            self.camera_names = list(embodiment.cameras or [])
        return self

    @property
    def vocab_size(self) -> int:
        """Token ids are in [0, vocab_size) (LLaMA-2: 32001 with <PAD>)."""
        return self.tokenizer.vocab_size

    def dataset_stats(self) -> Mapping[str, Any]:
        """The statistics of the selected dataset (`unnorm_key`)."""
        key = select_unnorm_key(self.norm_stats, self.unnorm_key)
        assert self.norm_stats is not None
        return self.norm_stats[key]

    @property
    def bounds(self) -> Bounds:
        if self.variant == "openvla":
            return "bounds_q99"
        if self.normalization is not None:
            return self.normalization
        action = self.dataset_stats().get("action", {})
        dim = len(action.get("q01", action.get("min", [])))
        return "bounds" if dim == 14 else "bounds_q99"  # OFT's ALOHA constants, else LIBERO/BRIDGE

    @property
    def action_dim(self) -> int:
        action = self.dataset_stats()["action"]
        return len(action.get("q01", action.get("min", [])))

    @property
    def max_action_dim(self) -> int:
        return self.action_dim

    @property
    def state_dim(self) -> int:
        """Values of `state` read (OFT's proprio dim), 0 when the state is not used."""
        if not self.use_proprio:
            return 0
        proprio = self.dataset_stats().get("proprio", {})
        return len(proprio.get("q01", proprio.get("min", [])))

    @property
    def cameras(self) -> list[str]:
        return list(self.camera_names or [])

    # ---- raw -> model inputs ----------------------------------------------------------------
    def prompt(self, task: str) -> str:
        """`get_vla_action`'s prompt: the task lower-cased."""
        return PROMPT_TEMPLATE.format(task=task.lower())

    def tokenize(self, task: str) -> torch.Tensor:
        """(L,) int64: BOS + the prompt's tokens + the empty token where the prompt lacks it."""
        ids = list(self.tokenizer.tokenizer(self.prompt(task))["input_ids"])
        if not ids or ids[-1] != self.empty_token_id:
            ids.append(self.empty_token_id)
        return torch.tensor(ids, dtype=torch.int64)

    def pixel_values(self, image: Any, camera: str) -> torch.Tensor:
        """One uint8 (H, W, 3) frame -> (3 * n_featurizers, 224, 224) float32."""
        from PIL import Image

        frame = _to_uint8_hwc(image, camera)
        if self.resize_like_rlds and frame.shape != (OPENVLA_IMAGE_SIZE, OPENVLA_IMAGE_SIZE, 3):
            frame = resize_like_rlds(frame, OPENVLA_IMAGE_SIZE)
        if self.center_crop:
            frame = center_crop_and_resize(np.asarray(Image.fromarray(frame).convert("RGB")), self.crop_scale)
        return self.transform(Image.fromarray(frame).convert("RGB"))

    def _frames(self, images: Mapping[str, Any]) -> list[tuple[str, Any]]:
        if self.camera_names is None:
            if not images:
                raise DataError("the observation has no images; OpenVLA needs the camera frame(s) under 'images'.")
            if self.variant == "openvla" and len(images) > 1:
                raise DataError(f"OpenVLA reads one image, but the observation has {sorted(images)}; set "
                                "`cameras: [<name>]` in the processor (or send one image).")
            return list(images.items())
        missing = [c for c in self.camera_names if c not in images]
        if missing:
            raise DataError(f"the observation has no image for camera(s) {missing} (it has {sorted(images)}); the "
                            f"processor's cameras are {self.camera_names}.")
        return [(c, images[c]) for c in self.camera_names]

    def __call__(self, raw: dict[str, Any]) -> dict[str, torch.Tensor]:
        """{"images": {camera: uint8 (H, W, 3)}, "task": str, "state": (P,)} -> images (N_cam, 6, 224, 224),
        img_masks (N_cam,), lang_tokens/lang_masks (L,), states (P,) (normalised proprio, or (0,))."""
        if "task" not in raw:
            raise DataError("the observation has no 'task' (the instruction string).")
        frames = self._frames(raw.get("images") or {})
        images = torch.stack([self.pixel_values(image, camera) for camera, image in frames])
        tokens = self.tokenize(str(raw["task"]))
        states = torch.zeros(0)
        if self.use_proprio:
            if raw.get("state") is None:
                raise DataError("this OFT model reads the robot state (proprio), but the observation has no 'state'.")
            stats = self.dataset_stats()
            if "proprio" not in stats:
                raise DataError(f"the statistics of '{select_unnorm_key(self.norm_stats, self.unnorm_key)}' have no "
                                "'proprio' entry to normalise the state with.")
            # Training samples as normalize_action_and_proprio (RLDS), observations as normalize_proprio (eval).
            normalize = normalize_for_training if raw.get("actions") is not None else normalize_proprio
            states = torch.from_numpy(normalize(raw["state"], stats["proprio"], self.bounds)).float()
        out = {
            "images": images,
            "img_masks": torch.ones(len(frames), dtype=torch.bool),
            "lang_tokens": tokens,
            "lang_masks": torch.ones_like(tokens, dtype=torch.bool),
            "states": states,
        }
        if raw.get("actions") is not None:  # a training sample: normalised as OpenVLA's RLDS pipeline does
            actions = np.asarray(raw["actions"], dtype=np.float64)
            if actions.ndim != 2 or actions.shape[0] != self.chunk_size:
                raise DataError(f"'actions' has shape {actions.shape}; expected (chunk_size={self.chunk_size}, "
                                f"{self.action_dim}).")
            normalized = normalize_for_training(actions, self.dataset_stats()["action"], self.bounds)
            out["actions"] = torch.from_numpy(normalized).float()
            is_pad = raw.get("action_is_pad")
            pad = torch.zeros(self.chunk_size, dtype=torch.bool) if is_pad is None else torch.as_tensor(is_pad)
            out["action_masks"] = ~pad.bool().reshape(self.chunk_size)
        return out

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Stack samples; prompts are right-padded to the longest (pad id 0, masked)."""
        length = max(s["lang_tokens"].shape[0] for s in samples)
        batch: dict[str, Any] = {}
        for key in samples[0]:
            if key in ("lang_tokens", "lang_masks"):
                pad = 0 if key == "lang_tokens" else False
                batch[key] = torch.stack([torch.nn.functional.pad(s[key], (0, length - s[key].shape[0]), value=pad)
                                          for s in samples])
            else:
                batch[key] = torch.stack([s[key] for s in samples])
        return batch

    # ---- model actions -> robot units ------------------------------------------------------------
    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, T, A) normalised -> (B, T, A) float64 in robot units (masked dims as predicted)."""
        stats = self.dataset_stats()
        eps = 1e-8 if self.variant == "oft" else 0.0
        array = torch.as_tensor(actions).detach().cpu().double().numpy()
        return torch.from_numpy(unnormalize_actions(array, stats["action"], self.bounds, eps))

    # ---- loading and saving --------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"variant": self.variant, "image_processor": self.image_processor, "unnorm_key": self.unnorm_key,
                "center_crop": self.center_crop, "crop_scale": self.crop_scale,
                "resize_like_rlds": self.resize_like_rlds, "normalization": self.normalization,
                "use_proprio": self.use_proprio, "cameras": self.camera_names, "empty_token_id": self.empty_token_id,
                "chunk_size": self.chunk_size}

    @classmethod
    def from_hf_directory(cls, directory: str | Path, variant: Literal["openvla", "oft"] = "openvla",
                          **overrides: Any) -> OpenVLAProcessor:
        """The processor of a released checkpoint directory: its tokenizer, `preprocessor_config.json` and
        `norm_stats` (`dataset_statistics.json` replaces config.json's, as `get_vla` loads them)."""
        directory = Path(directory)
        image_config = directory / "preprocessor_config.json"
        if not image_config.is_file():
            raise CheckpointError(f"'{directory}' has no preprocessor_config.json (PrismaticImageProcessor's "
                                  "settings); copy it from the released checkpoint.")
        settings = {"variant": variant, "tokenizer": str(directory),
                    "image_processor": _read_json(image_config), **overrides}
        processor = cls(**settings)
        statistics = directory / "dataset_statistics.json"
        if statistics.is_file():
            processor.norm_stats = _read_json(statistics)
        else:
            processor.norm_stats = _read_json(directory / "config.json").get("norm_stats")
        return processor

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `directory/processor/` (settings + norm_stats in processor_config.json, tokenizer/), atomically."""
        from vla_core.atomic import atomic_directory

        directory = Path(directory)
        with atomic_directory(directory / PROCESSOR_DIR) as tmp:
            write_processor_config(tmp, self, FORMAT_VERSION, {**self.config(), "tokenizer": HF_DIR},
                                   norm_stats=self.norm_stats)
            self.tokenizer.save(tmp)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> OpenVLAProcessor:
        """Load what `save_pretrained` wrote into checkpoint `directory`."""
        payload = read_processor_config(directory, FORMAT_VERSION, "vla-openvla")
        if payload.get("type") != cls.__name__:
            path = Path(directory) / PROCESSOR_DIR / CONFIG_FILE
            raise CheckpointError(f"{path} was written by {payload.get('type')}, not {cls.__name__}; re-save it.")
        config = payload["config"]
        config["tokenizer"] = str(Path(directory) / PROCESSOR_DIR / HF_DIR)
        processor = cls(**config)
        processor.norm_stats = payload.get("norm_stats")
        return processor

    def __repr__(self) -> str:
        keys = sorted(self.norm_stats or {})
        return (f"OpenVLAProcessor(variant={self.variant!r}, unnorm_key={self.unnorm_key!r}, datasets={keys}, "
                f"center_crop={self.center_crop}, use_proprio={self.use_proprio})")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"'{path}' is missing; the checkpoint is incomplete.") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is corrupt ({exc}); restore it from the released checkpoint.") from None


def _to_uint8_hwc(image: Any, camera: str) -> np.ndarray:
    """A frame as the reference takes it: uint8 (H, W, 3) (CHW uint8 and float [0, 1] are converted)."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise DataError(f"image '{camera}' must be (H, W, 3) uint8, got shape {array.shape}.")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError(f"image '{camera}' must be uint8 (or float in [0, 1]), got {array.dtype}.")
        array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)
