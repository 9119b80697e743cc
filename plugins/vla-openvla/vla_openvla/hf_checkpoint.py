"""Load the released Hugging Face OpenVLA / OpenVLA-OFT checkpoint directories, without remote code.

OpenVLA (`openvla/openvla-7b`): `config.json` (`model_type: openvla`, `timm_model_ids`,
`image_sizes`, `text_config`, `norm_stats`, ...) and `model-*.safetensors` whose keys
are exactly our parameter names (`vision_backbone.featurizer.*`, `projector.fc1.*`,
`language_model.*`).

OpenVLA-OFT (`moojink/openvla-7b-oft-finetuned-*`): the same (LoRA already merged) plus
`action_head--<step>_checkpoint.pt` (keys `module.model.*`), optionally
`proprio_projector--<step>_checkpoint.pt` (`module.fc1.*`, `module.fc2.*`) and
`dataset_statistics.json`. These `.pt` files are read with `torch.load(weights_only=True)`.
The chunk size is not stored; it follows OFT's platform constants (LIBERO, ALOHA,
BRIDGE), recognised by the action and proprio dims, unless given.

Sizes come from the config and the weight shapes (read from the safetensors headers),
so tiny test checkpoints load the same way; a non-standard `vla_timm_overrides` entry in
config.json passes extra timm arguments per featurizer (random small ViTs in tests).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from vla_core.errors import CheckpointError
from vla_core.models import build_vla, load_into, load_state_dict
from vla_core.models.weights import weight_files

#: LLaMA-2's "▁" token, which OpenVLA's prompts end with after "Out:".
LLAMA_EMPTY_TOKEN_ID = 29871

#: OFT's `prismatic/vla/constants.py`: (action_dim, proprio_dim) -> NUM_ACTIONS_CHUNK.
OFT_PLATFORM_CHUNK_SIZES: dict[tuple[int, int | None], int] = {
    (7, 8): 8,  # LIBERO
    (14, 14): 25,  # ALOHA
    (7, 7): 5,  # BRIDGE
}


def _tensor_shapes(directory: Path, names: set[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of the named tensors, read from the safetensors headers (no weights loaded)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in weight_files(directory):
        with safe_open(str(file), framework="pt") as handle:
            for name in names & set(handle.keys()):
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    missing = names - shapes.keys()
    if missing:
        raise CheckpointError(f"'{directory}' lacks {sorted(missing)}; it is not a complete OpenVLA checkpoint.")
    return shapes


def _single_file(directory: Path, prefix: str) -> Path | None:
    found = sorted(directory.glob(f"{prefix}--*checkpoint.pt"))
    if len(found) > 1:
        raise CheckpointError(f"'{directory}' holds several {prefix} files ({[f.name for f in found]}); keep one.")
    return found[0] if found else None


def _load_module_state(path: Path) -> dict[str, torch.Tensor]:
    """A DDP-saved state dict (keys `module.*`) with the prefix removed; tensors only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files
        raise CheckpointError(f"could not read '{path}' ({type(exc).__name__}: {exc}); restore the file.") from None
    return {key.removeprefix("module."): value for key, value in state.items()}


def _action_dim_from_norm_stats(norm_stats: dict[str, Any] | None) -> int:
    for stats in (norm_stats or {}).values():
        q01 = stats.get("action", {}).get("q01") if isinstance(stats, dict) else None
        if q01 is not None:
            return len(q01)
    return 7


def openvla_spec(directory: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The `OpenVLA` spec (our config) equivalent to a Hugging Face OpenVLA config.json."""
    ids = list(config.get("timm_model_ids") or [])
    fused = bool(config.get("use_fused_vision_backbone", len(ids) == 2))
    count = 2 if fused else 1
    if len(ids) < count:
        raise CheckpointError(f"{directory / 'config.json'} names {len(ids)} timm models but "
                              f"use_fused_vision_backbone is {fused}; the config is not an OpenVLA config.")
    text_config = dict(config.get("text_config") or {})
    shapes = _tensor_shapes(directory, {"projector.fc1.weight", "language_model.model.embed_tokens.weight"})
    vocab_size, hidden = shapes["language_model.model.embed_tokens.weight"]
    text_config.setdefault("vocab_size", vocab_size)
    text_config.setdefault("hidden_size", hidden)
    vision: dict[str, Any] = {
        "type": "PrismaticVisionBackbone",
        "timm_model_ids": ids[:count],
        "image_sizes": list(config.get("image_sizes") or [224] * count)[:count],
        "timm_override_act_layers": list(config.get("timm_override_act_layers") or [None] * count)[:count],
        # vla's processor gives one normalised 3-channel image; re-normalise it per encoder as
        # OpenVLA's processor does (6-channel stacked inputs are still taken as they are).
        "image_normalization": "timm",
    }
    if config.get("vla_timm_overrides"):
        vision["timm_overrides"] = list(config["vla_timm_overrides"])[:count]
    return {
        "type": "OpenVLA",
        "vision_backbone": vision,
        "projector": {
            "type": "PrismaticProjector",
            "in_dim": shapes["projector.fc1.weight"][1],
            "out_dim": hidden,
            "arch": "fused-gelu-mlp" if fused else "gelu-mlp",
        },
        "text_config": text_config,
        "pad_to_multiple_of": int(config.get("pad_to_multiple_of", 64)),
        "n_action_bins": int(config.get("n_action_bins", 256)),
        "action_dim": _action_dim_from_norm_stats(config.get("norm_stats")),
        # The released predict_action appends LLaMA's empty token 29871 to prompts lacking it.
        "prompt_suffix_token_id": LLAMA_EMPTY_TOKEN_ID if vocab_size > LLAMA_EMPTY_TOKEN_ID else None,
    }


def oft_spec(
    base: dict[str, Any], head_state: dict[str, torch.Tensor], proprio_state: dict[str, torch.Tensor] | None,
    chunk_size: int | None,
) -> dict[str, Any]:
    """Turn an OpenVLA spec into the OpenVLAOFT one whose head/projector fit these state dicts."""
    try:
        fc1, fc2 = head_state["model.fc1.weight"], head_state["model.fc2.weight"]
    except KeyError as exc:
        raise CheckpointError(f"the OFT action head file lacks {exc}; it is not an L1 regression head.") from None
    action_dim, hidden_dim = fc2.shape[0], fc1.shape[0]
    blocks = {int(m.group(1)) for key in head_state if (m := re.match(r"model\.mlp_resnet_blocks\.(\d+)\.", key))}
    proprio_dim = None if proprio_state is None else proprio_state["fc1.weight"].shape[1]
    if chunk_size is None:
        chunk_size = OFT_PLATFORM_CHUNK_SIZES.get((action_dim, proprio_dim))
        if chunk_size is None:
            raise CheckpointError(
                f"cannot tell the chunk size of this OpenVLA-OFT checkpoint (action dim {action_dim}, proprio dim "
                f"{proprio_dim} match no OFT platform); load it with "
                "vla_openvla.hf_checkpoint.load_hf_openvla(path, chunk_size=N)."
            )
    llm_width = base["projector"]["out_dim"]
    spec = {key: value for key, value in base.items() if key not in ("type", "n_action_bins", "pad_to_multiple_of")}
    spec.update({
        "type": "OpenVLAOFT",
        "action_dim": action_dim,
        "chunk_size": chunk_size,
        "vla_head": {
            "type": "L1RegressionActionHead",
            "input_dim": fc1.shape[1] // action_dim,
            "hidden_dim": hidden_dim,
            "action_dim": action_dim,
            "chunk_size": chunk_size,
            "num_blocks": len(blocks),
        },
    })
    if llm_width != fc1.shape[1] // action_dim:
        raise CheckpointError(f"the OFT action head reads {fc1.shape[1] // action_dim}-wide states but the language "
                              f"model is {llm_width} wide; the head file belongs to another model.")
    if proprio_dim is not None:
        spec["proprio_projector"] = {"type": "PrismaticProjector", "in_dim": proprio_dim, "out_dim": llm_width,
                                     "arch": "gelu-mlp"}
    return spec


def load_hf_openvla(
    path: str | Path, config: dict[str, Any] | None = None, chunk_size: int | None = None, strict: bool = True,
    processor_options: dict[str, Any] | None = None,
) -> Any:
    """Build OpenVLA (or OpenVLAOFT, when an action head file is present) from a Hugging Face
    checkpoint directory and load every weight; the result is in eval mode and carries
    `norm_stats` (the action/proprio statistics of the checkpoint) and `load_report`.

    Args:
        path: the directory (config.json + model*.safetensors [+ OFT .pt files]).
        config: its parsed config.json (read when not given).
        chunk_size: OFT chunk size, when the platform cannot be recognised.
        strict: fail on any missing, unexpected or mis-shaped key.
        processor_options: `OpenVLAProcessor` settings over the released ones (unnorm_key, center_crop, ...).

    With the tokenizer and `preprocessor_config.json` in the directory, `vla.processor` is the
    reference pipeline (`OpenVLAProcessor`), so `Policy.from_pretrained(path)` takes raw observations.
    """
    directory = Path(path)
    if config is None:
        config = json.loads((directory / "config.json").read_text())
    for prefix, what in (("vision_backbone", "FiLM"), ("noisy_action_projector", "diffusion action head")):
        if _single_file(directory, prefix) is not None:
            raise CheckpointError(f"'{directory}' is an OpenVLA-OFT checkpoint with a {what}, which vla-openvla does "
                                  "not implement yet; only the L1 regression variant (with or without proprio) loads.")
    spec = openvla_spec(directory, config)
    state = load_state_dict(directory)
    head_file = _single_file(directory, "action_head")
    proprio_file = None
    if head_file is not None:
        head_state = _load_module_state(head_file)
        proprio_file = _single_file(directory, "proprio_projector")
        proprio_state = None if proprio_file is None else _load_module_state(proprio_file)
        spec = oft_spec(spec, head_state, proprio_state, chunk_size)
        state.update({f"vla_head.{key}": value for key, value in head_state.items()})
        if proprio_state is not None:
            state.update({f"proprio_projector.{key}": value for key, value in proprio_state.items()})
    # get_vla (openvla and OFT): dataset_statistics.json, when present, replaces config.json's norm_stats.
    norm_stats = config.get("norm_stats")
    statistics = directory / "dataset_statistics.json"
    if statistics.is_file():
        norm_stats = json.loads(statistics.read_text())
    variant = "openvla" if head_file is None else "oft"
    options = {"use_proprio": proprio_file is not None, "chunk_size": int(spec.get("chunk_size", 1)),
               **(processor_options or {})}
    processor = released_processor(directory, variant, **options)
    if processor is not None:  # recorded in the spec, so a converted checkpoint picks the same preset
        spec["processor"] = {"type": "OpenVLAProcessor", **processor.config(), "tokenizer": str(directory)}
    vla = build_vla(spec)
    vla.load_report = load_into(vla, state, strict=strict, source=str(directory))
    vla.norm_stats = norm_stats
    vla.processor = processor
    vla.checkpoint_dir = directory
    return vla.eval()


def released_processor(directory: Path, variant: str, **options: Any) -> Any | None:
    """The reference pipeline of a released directory (`OpenVLAProcessor`), or None when the
    directory lacks its tokenizer or `preprocessor_config.json` (weights only: no raw observations)."""
    has_tokenizer = any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer.model"))
    if not has_tokenizer or not (directory / "preprocessor_config.json").is_file():
        return None
    from vla_openvla.processor import OpenVLAProcessor

    return OpenVLAProcessor.from_hf_directory(directory, variant=variant, **options)
