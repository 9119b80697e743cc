"""`GR00TProcessor` (group vla.processors): GR00T N1.5's own pipeline from a raw observation to
model inputs, and from the action chunk back to the robot's action keys.

    processor = GR00TProcessor(metadata="GR00T-ckpt/experiment_cfg/metadata.json",
                               tokenizer="GR00T-ckpt/eagle2_hg_model")
    sample = processor({"images": {"webcam": frame}, "task": "pick the cube",
                        "state": {"single_arm": q[:5], "gripper": q[5:]}})
    batch = processor.collate([sample])                        # vla.predict_action(**batch)
    actions = processor.unnormalize_actions(normalised)        # (B, T, action_dim), robot units
    per_key = processor.split_actions(actions[0])              # {"action.single_arm": (T, 5), ...}

It follows Isaac-GR00T's eval-mode transforms step by step (docs/eagle.md has the table):
images through `gr00t_images`, the prompt through `eagle_prompt`, every state/action key
normalised by its own mode with the statistics of `experiment_cfg/metadata.json`
(`gr00t_normalizer`), keys concatenated in order and zero-padded to max_state_dim /
max_action_dim, and the embodiment tag mapped to its projector index (`embodiment_tags`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vla_core.data.processor_files import PROCESSOR_DIR, read_processor_config, write_processor_config
from vla_core.data.schema import collate as collate_samples
from vla_core.errors import CheckpointError, ConfigError, DataError
from vla_eagle.eagle_prompt import ImageTokens, eagle_prompt, left_pad
from vla_eagle.embodiment_tags import embodiment_index
from vla_eagle.gr00t_images import eagle_pixel_values, gr00t_eval_frame
from vla_eagle.gr00t_metadata import EmbodimentMetadata, read_metadata, select_embodiment
from vla_eagle.gr00t_normalizer import GR00T_NORMS, REQUIRED_STATS, GR00TNorm, normalize, unnormalize

METADATA_FILE = "metadata.json"
TOKENIZER_DIR = "tokenizer"
FORMAT_VERSION = 1


class GR00TProcessor:
    """GR00T N1.5's observation pipeline (the `gr00t` preset): Eagle images and chat prompt,
    metadata.json normalisation per state/action key, embodiment tag -> projector index.

    Args:
        metadata: a GR00T `experiment_cfg/metadata.json`; null when loaded from a checkpoint's processor/.
        tokenizer: a local Eagle processor directory (the tokenizer, and processor_config.json for the
            image markup), e.g. Isaac-GR00T's gr00t/model/backbone/eagle2_hg_model; nothing is downloaded.
        embodiment_tag: the metadata entry to use, which also picks the per-embodiment weights
            (new_embodiment = 31, gr1 = 24, oxe_droid = 17, agibot_genie1 = 26); null = the only entry.
        embodiment_tags: extra or overriding {tag: projector index} for tags GR00T N1.5 does not list.
        video_keys: camera keys in the model's image order (GR00T's video_concat_order); null = metadata order.
        state_keys: state keys in concatenation order (state_concat_order); null = metadata order.
        action_keys: action keys in concatenation order (action_concat_order); null = metadata order.
        state_norm: one mode for every state key, or {key: mode}: min_max (GR00T's data configs), q99,
            mean_std, binary or none.
        action_norm: the same for the action keys.
        crop_scale: the eval centre crop of VideoCrop (0.95); null for data configs without VideoCrop.
        image_size: VideoResize's size, which is also Eagle's tile size (224).
        image_mean: Eagle's image_mean (preprocessor_config.json; 0.5).
        image_std: Eagle's image_std (0.5).
        max_state_dim: the model's state width (GR00T N1.5: 64); the state is zero-padded to it.
        max_action_dim: the model's action width (32); actions are cut back to the robot's keys.
        action_horizon: actions per chunk (16).
        default_instruction: the prompt when an observation has no task (GR00TTransform's default).
    """

    def __init__(
        self,
        metadata: str | None = None,
        tokenizer: str | None = None,
        embodiment_tag: str | None = None,
        embodiment_tags: dict[str, int] | None = None,
        video_keys: list[str] | None = None,
        state_keys: list[str] | None = None,
        action_keys: list[str] | None = None,
        state_norm: GR00TNorm | dict[str, GR00TNorm] = "min_max",
        action_norm: GR00TNorm | dict[str, GR00TNorm] = "min_max",
        crop_scale: float | None = 0.95,
        image_size: int = 224,
        image_mean: float = 0.5,
        image_std: float = 0.5,
        max_state_dim: int = 64,
        max_action_dim: int = 32,
        action_horizon: int = 16,
        default_instruction: str = "Perform the default behavior.",
    ) -> None:
        if crop_scale is not None and not 0 < crop_scale <= 1:
            raise ConfigError(f"is {crop_scale}; the centre crop keeps a fraction in (0, 1] of each side.",
                              "processor.crop_scale")
        self.config: dict[str, Any] = {
            "embodiment_tag": embodiment_tag, "embodiment_tags": embodiment_tags, "video_keys": video_keys,
            "state_keys": state_keys, "action_keys": action_keys, "state_norm": state_norm,
            "action_norm": action_norm, "crop_scale": crop_scale, "image_size": image_size,
            "image_mean": image_mean, "image_std": image_std, "max_state_dim": max_state_dim,
            "max_action_dim": max_action_dim, "action_horizon": action_horizon,
            "default_instruction": default_instruction,
        }
        self.crop_scale = crop_scale
        self.image_size = (image_size, image_size)  # (H, W) of the model's input, as VLAProcessor's
        self.image_mean, self.image_std = image_mean, image_std
        self.max_state_dim, self.max_action_dim, self.chunk_size = max_state_dim, max_action_dim, action_horizon
        self.default_instruction = default_instruction
        self.meta: EmbodimentMetadata | None = None
        self.tokenizer: Any = None
        self.markup = ImageTokens()
        if metadata is not None:
            self.set_metadata(read_metadata(metadata), source=str(metadata))
        if tokenizer is not None:
            self.load_tokenizer(tokenizer)

    # ---- setup -----------------------------------------------------------------------------
    def set_metadata(self, content: dict[str, Any], source: str) -> None:
        """Select this processor's embodiment in a metadata.json content and resolve keys and modes."""
        meta = select_embodiment(content, self.config["embodiment_tag"], source)
        self.embodiment_id = embodiment_index(meta.tag, self.config["embodiment_tags"])
        self.keys = {
            "video": self._order("video_keys", list(meta.video_resolutions), source),
            "state": self._order("state_keys", list(meta.dims["state"]), source),
            "action": self._order("action_keys", list(meta.dims["action"]), source),
        }
        self.modes = {role: self._modes(role, meta, source) for role in ("state", "action")}
        self.meta = meta
        # GR00TTransform keeps the first max_state_dim state values, but asserts the actions fit.
        if self.action_dim > self.max_action_dim:
            raise ConfigError(
                f"the action keys of '{meta.tag}' in {source} have {self.action_dim} values, more than "
                f"max_action_dim={self.max_action_dim}; the model cannot predict them.", "processor.max_action_dim")

    def _order(self, name: str, available: list[str], source: str) -> list[str]:
        keys = self.config[name]
        if keys is None:
            return available
        keys = [k.split(".", 1)[1] if k.startswith(("video.", "state.", "action.")) else k for k in keys]
        missing = [k for k in keys if k not in available]
        if missing:
            raise ConfigError(f"names {missing}, which {source} does not list (it has {available}).",
                              f"processor.{name}")
        return keys

    def _modes(self, role: str, meta: EmbodimentMetadata, source: str) -> dict[str, str]:
        setting = self.config[f"{role}_norm"]
        modes = {key: setting if isinstance(setting, str) else setting.get(key, setting.get(f"{role}.{key}", "none"))
                 for key in self.keys[role]}
        for key, mode in modes.items():
            if mode not in GR00T_NORMS:
                raise ConfigError(f"{role}.{key}: '{mode}' is not one of {', '.join(GR00T_NORMS)}.",
                                  f"processor.{role}_norm")
            missing = [s for s in REQUIRED_STATS[mode] if s not in meta.statistics[role][key]]
            if missing:
                raise CheckpointError(f"{source}: {role}.{key} has no {', '.join(missing)} for {mode} normalisation.")
        return modes

    def load_tokenizer(self, directory: str | Path) -> None:
        """Eagle's tokenizer (and image markup) from a local directory; no remote code runs."""
        from transformers import AutoTokenizer

        directory = Path(directory)
        if not directory.is_dir():
            raise ConfigError(
                f"'{directory}' is not a directory. Give the Eagle processor directory GR00T uses (Isaac-GR00T's "
                "gr00t/model/backbone/eagle2_hg_model), copied next to the checkpoint.", "processor.tokenizer")
        try:
            # Eagle's config.json names remote code (auto_map); saying no up front keeps transformers from
            # asking on the terminal. The tokenizer itself is a plain Qwen2 one.
            self.tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True,
                                                           trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"'{directory}' could not be loaded as a tokenizer: {exc}",
                              "processor.tokenizer") from None
        self.markup = ImageTokens.from_directory(directory)
        if self.markup.context not in self.tokenizer.get_vocab():
            raise ConfigError(f"the tokenizer in '{directory}' has no '{self.markup.context}' token, which GR00T's "
                              "prompt needs for every image token.", "processor.tokenizer")
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else 0

    # ---- facts the engine and Policy read -------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.meta is not None and self.tokenizer is not None

    def _ready(self) -> EmbodimentMetadata:
        if self.meta is None or self.tokenizer is None:
            raise DataError("this GR00TProcessor has no metadata or tokenizer: build it with metadata= and tokenizer=, "
                            "or load it with GR00TProcessor.from_pretrained(checkpoint_dir).")
        return self.meta

    @property
    def cameras(self) -> list[str]:
        return list(self.keys["video"]) if self.meta is not None else []

    @property
    def state_dim(self) -> int:
        return sum(self._ready().dims["state"][k] for k in self.keys["state"])

    @property
    def action_dim(self) -> int:
        if self.meta is None:
            self._ready()
        assert self.meta is not None
        return sum(self.meta.dims["action"][k] for k in self.keys["action"])

    @property
    def vocab_size(self) -> int:
        self._ready()
        return len(self.tokenizer)

    @property
    def image_token_id(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids(self.markup.context))

    def fit(self, dataset: Any) -> GR00TProcessor:
        raise DataError(
            "GR00TProcessor reads its statistics from a GR00T checkpoint's experiment_cfg/metadata.json (metadata:) "
            "and does not compute them from a dataset; fine-tune with a VLAProcessor, or give metadata and tokenizer."
        )

    # ---- raw observation -> model inputs -------------------------------------------------------
    def __call__(self, raw: dict[str, Any]) -> dict[str, torch.Tensor]:
        """{"images": {camera: uint8 (H, W, 3)}, "task": str, "state": {key: (dim,)} or (state_dim,)}
        -> images (N_cam, 3, S, S), img_masks (N_cam,), lang_tokens / lang_masks (L,) (unpadded; `collate`
        pads on the left), states (max_state_dim,), embodiment_id (); with "actions" (T, action_dim) also
        actions (T, max_action_dim) and action_masks (T,)."""
        self._ready()
        images = self.images(raw.get("images") or {})
        task = raw.get("task")
        prompt = eagle_prompt(self.default_instruction if task is None else str(task), len(images), self.markup)
        ids = torch.tensor(self.tokenizer(prompt)["input_ids"], dtype=torch.int64)
        if "state" not in raw:
            raise DataError(f"the observation has no 'state' (keys {self.keys['state']}).")
        out = {
            "images": images,
            "img_masks": torch.ones(len(images), dtype=torch.bool),
            "lang_tokens": ids,
            "lang_masks": torch.ones(len(ids), dtype=torch.bool),
            "states": self.normalize("state", raw["state"], self.max_state_dim),
            # the tag's projector; an observation (e.g. a served request) may name another slot
            "embodiment_id": torch.tensor(int(raw.get("embodiment_id", self.embodiment_id)), dtype=torch.int64),
        }
        if raw.get("actions") is not None:
            out["actions"] = self.normalize("action", raw["actions"], self.max_action_dim)
            is_pad = raw.get("action_is_pad")
            pad = torch.zeros(self.chunk_size, dtype=torch.bool) if is_pad is None else torch.as_tensor(is_pad)
            out["action_masks"] = ~pad.to(torch.bool).reshape(-1)
        return out

    def images(self, frames: dict[str, Any]) -> torch.Tensor:
        """{camera (or "video.<camera>", "observation.images.<camera>"): uint8 (H, W, 3)} -> (N_cam, 3, S, S)
        float32 Eagle pixel values, in video_keys order."""
        out = []
        for camera in self.keys["video"]:
            # GR00T's key, its modality-prefixed form, or the LeRobot feature name
            names = (camera, f"video.{camera}", f"observation.images.{camera}")
            frame = next((frames[n] for n in names if n in frames), None)
            if frame is None:
                raise DataError(f"the observation has no image for camera '{camera}' (it has {sorted(frames)}); "
                                f"GR00T reads every camera of {self.keys['video']}.")
            image = gr00t_eval_frame(frame, camera, self.crop_scale, self.image_size[0])
            out.append(eagle_pixel_values(image, self.image_mean, self.image_std))
        return torch.stack(out)

    def _values(self, role: str, values: Any) -> dict[str, torch.Tensor]:
        """State/action given per key ({key or "role.key": array}) or concatenated -> {key: tensor}."""
        meta = self._ready()
        dims = [meta.dims[role][k] for k in self.keys[role]]
        if isinstance(values, dict):
            per_key = {}
            for key in self.keys[role]:
                value = values.get(key, values.get(f"{role}.{key}"))
                if value is None:
                    raise DataError(f"the {role} has no '{key}' (it has {sorted(values)}); GR00T needs "
                                    f"{self.keys[role]}.")
                per_key[key] = _as_float_tensor(value, f"{role}.{key}")
        else:
            flat = _as_float_tensor(values, role)
            if flat.shape[-1] != sum(dims):
                raise DataError(f"the {role} has {flat.shape[-1]} values; {self.keys[role]} have {sum(dims)}.")
            per_key = dict(zip(self.keys[role], torch.split(flat, dims, dim=-1), strict=True))
        for key, dim in zip(self.keys[role], dims, strict=True):
            if per_key[key].shape[-1] != dim:
                raise DataError(f"{role}.{key} has {per_key[key].shape[-1]} values; metadata.json says {dim}.")
        return per_key

    def normalize(self, role: str, values: Any, max_dim: int) -> torch.Tensor:
        """Per-key normalisation (StateActionTransform.apply), concatenation in key order
        (ConcatTransform.apply), zero-padding to max_dim (GR00TTransform._prepare_state) -> float32."""
        meta = self._ready()
        per_key = self._values(role, values)
        parts = [normalize(per_key[k], self.modes[role][k], meta.statistics[role][k]) for k in self.keys[role]]
        joined = torch.cat(parts, dim=-1)
        if role == "state" and joined.ndim == 2 and joined.shape[0] == 1:
            joined = joined[0]  # one state frame, (1, dim) as GR00T's observations carry it
        joined = joined[..., :max_dim]  # _prepare_state keeps the first max_state_dim values
        return F.pad(joined, (0, max_dim - joined.shape[-1])).to(torch.float32)

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Stack samples; the prompts are padded on the left with the tokenizer's pad id, as Eagle's processor does."""
        ids, mask = left_pad([s["lang_tokens"] for s in samples], self.pad_token_id)
        text = ("lang_tokens", "lang_masks")
        rest = collate_samples([{k: v for k, v in s.items() if k not in text} for s in samples])
        return {**rest, "lang_tokens": ids, "lang_masks": mask}

    # ---- model actions -> robot units ----------------------------------------------------------
    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., max_action_dim) normalised -> (..., action_dim) robot units, float32: the first action_dim
        dims split per key (ConcatTransform.unapply) and un-normalised (StateActionTransform.unapply)."""
        meta = self._ready()
        x = torch.as_tensor(actions).float()
        dims = [meta.dims["action"][k] for k in self.keys["action"]]
        if x.shape[-1] < sum(dims):
            raise DataError(f"actions have {x.shape[-1]} dims, fewer than the robot's {sum(dims)}.")
        parts = torch.split(x[..., : sum(dims)], dims, dim=-1)
        return torch.cat([unnormalize(part, self.modes["action"][key], meta.statistics["action"][key])
                          for key, part in zip(self.keys["action"], parts, strict=True)], dim=-1)

    def split_actions(self, actions: Any) -> dict[str, np.ndarray]:
        """(..., action_dim) robot units -> {"action.<key>": (..., dim)}, the reference's output keys."""
        meta = self._ready()
        x = np.asarray(actions)
        dims = [meta.dims["action"][k] for k in self.keys["action"]]
        bounds = np.cumsum([0, *dims])
        return {f"action.{key}": x[..., bounds[i] : bounds[i + 1]] for i, key in enumerate(self.keys["action"])}

    # ---- saving --------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `directory/processor/` (settings, this embodiment's metadata.json entry, tokenizer), atomically."""
        from vla_core.atomic import atomic_directory

        meta = self._ready()
        directory = Path(directory)
        with atomic_directory(directory / PROCESSOR_DIR) as tmp:
            config = {**self.config, "embodiment_tag": meta.tag}
            write_processor_config(tmp, self, FORMAT_VERSION, config, image_markup=vars(self.markup))
            (tmp / METADATA_FILE).write_text(json.dumps({meta.tag: meta.raw}, indent=1))
            self.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GR00TProcessor:
        """Load what `save_pretrained` wrote into a checkpoint directory."""
        root = Path(directory) / PROCESSOR_DIR
        payload = read_processor_config(directory, FORMAT_VERSION, "vla-eagle")
        config = payload["config"]
        processor = cls(metadata=str(root / METADATA_FILE), tokenizer=str(root / TOKENIZER_DIR), **config)
        processor.markup = ImageTokens(**payload.get("image_markup", {}))
        return processor

    def __repr__(self) -> str:
        if self.meta is None:
            return "GR00TProcessor(unloaded)"
        return (f"GR00TProcessor(embodiment_tag={self.meta.tag!r}, embodiment_id={self.embodiment_id}, "
                f"cameras={self.cameras}, state={self.keys['state']}, action={self.keys['action']})")


def _as_float_tensor(values: Any, what: str) -> torch.Tensor:
    """Array-like -> a floating tensor in its own float dtype (float64 for ints), as GR00T keeps it."""
    try:
        array = np.asarray(values)
        if not np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"'{what}' is not numeric ({exc}).") from None
    return torch.from_numpy(np.ascontiguousarray(array))
