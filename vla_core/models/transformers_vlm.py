"""TransformersVLMBackbone: any image-text-to-text model of the installed transformers as a VLM backbone.

    images (B, N_cam, C, H, W) + instruction tokens (B, L)
      -> [chat-template prefix with each valid camera's image block] [instruction] [suffix]
      -> the transformers model's own forward -> hidden_states[select_layer]   (B, S, D)

The model is transformers' base class for the config (`AutoModel`: Qwen2_5_VLModel,
Qwen3VLModel, Idefics3Model, Gemma3Model, PaliGemmaModel, LlavaModel, ...), never remote
code, so the computation is the reference one. Where the image tokens go comes from the
model's saved processor and chat template (`vlm_prompt.PromptLayout`), the pixel layout
from transformers' image processor for that family (`vlm_pixels`), and the image size and
mean/std from the saved image processor. Everything the directory contributed (the full
transformers config, the prompt layout, the preprocessing) is written back into this
component's resolved spec, so a checkpoint rebuilds it without the original directory.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla_core.errors import ConfigError, DataError
from vla_core.models.architecture import transformers_config_dict
from vla_core.models.vlm_pixels import FAMILY_LAYOUTS, PixelLayout, patch_grid, pixel_inputs
from vla_core.models.vlm_prompt import PromptLayout
from vla_core.protocols import BackboneOutput

#: Preprocessing a family's image processor uses when no processor is saved (transformers' defaults).
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def load_config(model_type: str | None, config: dict[str, Any], path: Path | None) -> Any:
    """The transformers config: the directory's config.json updated with `config`, or
    `model_type`'s defaults updated with `config`."""
    from transformers import CONFIG_MAPPING, AutoConfig

    if path is not None:
        return AutoConfig.from_pretrained(str(path), local_files_only=True, **config)
    model_type = config.get("model_type", model_type)
    if model_type not in CONFIG_MAPPING:
        raise ConfigError(f"'{model_type}' is not a model type of the installed transformers; use one such as "
                          "qwen2_5_vl, qwen3_vl, idefics3, gemma3, paligemma, llava.", "model_type")
    return CONFIG_MAPPING[model_type].from_dict({k: v for k, v in config.items() if k != "model_type"})


def load_processor(path: Path | None) -> Any | None:
    """The directory's saved transformers processor, or None when it has none."""
    if path is None or not any((path / name).is_file() for name in ("processor_config.json",
                                                                      "preprocessor_config.json")):
        return None
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(path), local_files_only=True)


def _image_token_id(config: Any) -> int:
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"the {config.model_type} config has no image_token_id / image_token_index, so this model "
                      "takes no images through placeholders; TransformersVLMBackbone needs an image-text-to-text "
                      "model.", "model_type")


class TransformersVLMBackbone(nn.Module):
    """Any transformers image-text-to-text model (Qwen2.5-VL, Qwen3-VL, SmolVLM / Idefics3, Gemma 3,
    PaliGemma, LLaVA, ...) as a VLM backbone: images + instruction -> one hidden-state layer.

    The VLA's processor must match: `image_size`, `image_mean`, `image_std` (read from the
    model's saved image processor) and the model's tokenizer (`tokenizer: <the model directory>`);
    `processor_settings()` returns them, and training checks them.

    Args:
        model_type: transformers model type when building from `config` alone (qwen2_5_vl, qwen3_vl,
            idefics3, gemma3, paligemma, llava, ...).
        config: transformers config (or overrides on the directory's config.json). A saved checkpoint
            holds the complete one here.
        pretrained_name_or_path: a local model directory (`save_pretrained` output with its processor,
            tokenizer and chat template); nothing is downloaded.
        select_layer: which of the model's `hidden_states` are the features: 0 the embeddings, i the
            output of decoder layer i, -1 the last (after the final norm), -2 the one before.
        max_cameras: most images one sample shows; the prompt layout is made for 0..max_cameras.
        image_size: [H, W] the images arrive at; null: the processor's (or the vision config's) size.
            Qwen-VL models take any multiple of patch_size * merge_size (null: 224).
        image_mean: per-channel mean the processor subtracts; null: the saved image processor's.
        image_std: per-channel std the processor divides by; null: the saved image processor's.
        prompt_layout: the token ids around the instruction per image count (vla_core.models.vlm_prompt);
            null derives them from the processor's chat template. Checkpoints store it.
        freeze_vision: keep everything but the language decoder (vision tower, connector) fixed.
        freeze_language: keep the language decoder (and its embeddings) fixed.
        attn_implementation: transformers attention kernel ("sdpa", "eager"); null keeps the model's.
    """

    #: Its architecture, layout and preprocessing come from this directory; checkpoints record them.
    architecture_paths: tuple[str, ...] = ("pretrained_name_or_path",)

    def __init__(
        self,
        model_type: str | None = None,
        config: dict[str, Any] | None = None,
        pretrained_name_or_path: str | None = None,
        select_layer: int = -1,
        max_cameras: int = 3,
        image_size: list[int] | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        prompt_layout: dict[str, Any] | None = None,
        freeze_vision: bool = False,
        freeze_language: bool = False,
        attn_implementation: str | None = None,
    ) -> None:
        super().__init__()
        path = Path(pretrained_name_or_path) if pretrained_name_or_path else None
        if path is not None and not path.is_dir():
            raise ConfigError(f"'{path}' is not a local directory. Nothing is downloaded at run time: download the "
                              "model once (e.g. `hf download ...`) and point to that directory.",
                              "pretrained_name_or_path")
        if path is None and model_type is None and not (config or {}).get("model_type"):
            raise ConfigError("is missing: give pretrained_name_or_path (a model directory) or model_type + config.",
                              "model_type")
        hf_config = load_config(model_type, dict(config or {}), path)
        if attn_implementation is not None:
            hf_config._attn_implementation = attn_implementation
        self.model = self._build_model(hf_config, path)
        self.model_type: str = hf_config.model_type
        self.pixel_layout: PixelLayout = FAMILY_LAYOUTS.get(self.model_type, "images")
        text_config = hf_config.get_text_config()
        self.hidden_size: int = int(text_config.hidden_size)
        self.vocab_size: int = int(text_config.vocab_size)
        depth = int(text_config.num_hidden_layers)
        if not -(depth + 1) <= select_layer <= depth:
            raise ConfigError(f"is {select_layer}, but the model has {depth} decoder layers ({depth + 1} hidden "
                              f"states: 0 the embeddings .. {depth}); use -1 for the last.", "select_layer")
        self.select_layer = select_layer
        processor = load_processor(path) if prompt_layout is None or None in (image_size, image_mean) else None
        self.image_size = self._resolve_image_size(image_size, processor)
        self.image_mean, self.image_std = self._resolve_mean_std(image_mean, image_std, processor)
        self.image_token_id = _image_token_id(hf_config)
        self.prompt_layout = (PromptLayout.from_dict(prompt_layout) if prompt_layout is not None
                              else self._derive_layout(processor, max_cameras))
        self.freeze_vision, self.freeze_language = freeze_vision, freeze_language
        decoder_params = {id(p) for p in self.language_decoder.parameters()}
        for param in self.model.parameters():
            frozen = freeze_language if id(param) in decoder_params else freeze_vision
            param.requires_grad_(not frozen)
        self._forward_params = set(inspect.signature(self.model.forward).parameters)

    # ---- building ---------------------------------------------------------------------
    @staticmethod
    def _build_model(hf_config: Any, path: Path | None) -> nn.Module:
        from transformers import AutoModel

        if path is not None:
            # fp32 like every other part: the engine's precision setting decides the compute dtype.
            return AutoModel.from_pretrained(str(path), config=hf_config, local_files_only=True, dtype=torch.float32)
        return AutoModel.from_config(hf_config)

    @property
    def language_decoder(self) -> nn.Module:
        """The language model inside (the rest is the vision tower and its connector)."""
        decoder = self.model.get_decoder() if hasattr(self.model, "get_decoder") else None
        if decoder is None or decoder is self.model:
            for name in ("language_model", "text_model"):
                if isinstance(getattr(self.model, name, None), nn.Module):
                    return getattr(self.model, name)
            raise ConfigError(f"cannot find the language model inside {type(self.model).__name__}.", "model_type")
        return decoder

    def _resolve_image_size(self, image_size: list[int] | None, processor: Any | None) -> tuple[int, int]:
        config = self.model.config
        if image_size is None:
            size = getattr(getattr(processor, "image_processor", None), "size", None) or {}
            get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)
            max_size = getattr(getattr(processor, "image_processor", None), "max_image_size", None) or {}
            vision_size = getattr(getattr(config, "vision_config", None), "image_size", None)
            if self.pixel_layout == "patches":
                image_size = [224, 224]
            elif get("height") and get("width"):
                image_size = [int(get("height")), int(get("width"))]
            elif isinstance(max_size, dict) and max_size.get("longest_edge"):
                image_size = [int(max_size["longest_edge"])] * 2
            elif isinstance(vision_size, int):
                image_size = [vision_size, vision_size]
            else:
                raise ConfigError("cannot tell the model's image size from its processor or config; set image_size: "
                                  "[H, W].", "image_size")
        height, width = (int(v) for v in image_size)
        if self.pixel_layout == "patches":
            patch, _, merge = patch_grid(config)
            unit = patch * merge
            if height % unit or width % unit:
                raise ConfigError(f"is [{height}, {width}]; this model cuts images into {patch}-pixel patches merged "
                                  f"{merge}x{merge}, so both sides must be multiples of {unit}.", "image_size")
        return height, width

    def _resolve_mean_std(self, mean: list[float] | None, std: list[float] | None,
                          processor: Any | None) -> tuple[list[float], list[float]]:
        image_processor = getattr(processor, "image_processor", None)
        default = (_CLIP_MEAN, _CLIP_STD) if self.pixel_layout == "patches" else ([0.5] * 3, [0.5] * 3)
        if mean is None:
            mean = list(getattr(image_processor, "image_mean", None) or default[0])
        if std is None:
            std = list(getattr(image_processor, "image_std", None) or default[1])
        return [float(v) for v in mean], [float(v) for v in std]

    def _tokens_per_image(self) -> int:
        """Placeholders per image for the families whose count follows from the config alone."""
        config = self.model.config
        if self.pixel_layout == "patches":
            patch, _, merge = patch_grid(config)
            return (self.image_size[0] // patch) * (self.image_size[1] // patch) // (merge * merge)
        for name in ("mm_tokens_per_image", "image_seq_length"):
            if isinstance(getattr(config, name, None), int):
                return int(getattr(config, name))
        vision = config.vision_config
        patches = (vision.image_size // vision.patch_size) ** 2
        return int(patches * getattr(config, "scale_factor", 1) ** -2) if hasattr(config, "scale_factor") else patches

    def _derive_layout(self, processor: Any | None, max_cameras: int) -> PromptLayout:
        if processor is not None:
            return PromptLayout.from_processor(processor, self.image_size, max_cameras, self.image_token_id)
        config = self.model.config
        return PromptLayout.image_tokens_first(
            self._tokens_per_image(), max_cameras, self.image_token_id,
            getattr(config, "vision_start_token_id", None) or getattr(config, "boi_token_index", None),
            getattr(config, "vision_end_token_id", None) or getattr(config, "eoi_token_index", None),
        )

    def resolved_parameters(self) -> dict[str, Any]:
        """What the directory and processor contributed, so the saved spec rebuilds this
        backbone alone (build_component merges it into `component_spec`)."""
        return {
            "model_type": self.model_type,
            "config": transformers_config_dict(self.model.config),
            "pretrained_name_or_path": None,
            "image_size": list(self.image_size),
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "prompt_layout": self.prompt_layout.to_dict(),
            "max_cameras": self.prompt_layout.max_images,
        }

    @staticmethod
    def records_architecture(spec: dict[str, Any]) -> bool:
        """Whether a saved spec holds all this backbone reads from its directory (checkpoints
        written before `pretrained_name_or_path` was cleared in the record still name it)."""
        return bool(spec.get("config")) and all(spec.get(key) is not None
                                                for key in ("prompt_layout", "image_size", "image_mean", "image_std"))

    def processor_settings(self) -> dict[str, Any]:
        """The VLAProcessor settings this backbone expects its images in."""
        return {"image_size": list(self.image_size), "image_mean": self.image_mean, "image_std": self.image_std}

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """The decoder layers and vision blocks transformers marks as unsplittable."""
        names = set(getattr(self.model, "_no_split_modules", None) or [])
        return {type(m) for m in self.model.modules() if type(m).__name__ in names}

    # ---- forward --------------------------------------------------------------------------
    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        img_masks: torch.Tensor,
        lang_masks: torch.Tensor,
    ) -> BackboneOutput:
        """images (B, N_cam, C, H, W) normalised; lang_tokens (B, L) long (the model tokenizer's ids of the
        instruction); img_masks (B, N_cam) bool; lang_masks (B, L) bool -> BackboneOutput(features
        (B, S, hidden_size), mask (B, S) bool, extra None), S = the longest assembled prompt.

        Only valid cameras are encoded and placed, as the model's processor only receives those.
        """
        if images.ndim != 5 or tuple(images.shape[-2:]) != self.image_size:
            raise DataError(f"TransformersVLMBackbone expects images (B, N_cam, C, {self.image_size[0]}, "
                            f"{self.image_size[1]}), got {tuple(images.shape)}. Set the processor's image_size to "
                            f"{list(self.image_size)} (backbone.processor_settings()).")
        valid = img_masks.bool()
        input_ids, mask = self.prompt_layout.assemble(lang_tokens, lang_masks, valid.sum(dim=1))
        if int(input_ids.max()) >= self.vocab_size:
            raise DataError(f"token id {int(input_ids.max())} is outside the model's vocabulary ({self.vocab_size}); "
                            "tokenize with the model's own tokenizer (processor tokenizer: <the model directory>).")
        dtype = next(self.model.parameters()).dtype
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask.long()}
        if bool(valid.any()):
            inputs.update(pixel_inputs(self.pixel_layout, images[valid].to(dtype), self.model.config))
        image_positions = (input_ids == self.image_token_id).long()
        for name in ("mm_token_type_ids", "token_type_ids"):  # marks image tokens where the family asks for it
            if name in self._forward_params:
                inputs[name] = image_positions
        # No KV cache: it costs memory and breaks recomputation under activation checkpointing.
        out = self.model(**inputs, use_cache=False, output_hidden_states=True)
        return BackboneOutput(out.hidden_states[self.select_layer], mask, None)
