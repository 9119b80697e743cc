"""openpi PyTorch checkpoints: the directory `examples/convert_jax_model_to_pytorch.py` writes.

    model.safetensors          PI0Pytorch's state dict (`safetensors.torch.save_model`)
    config.json                {"action_dim", "action_horizon", "paligemma_variant",
                                "action_expert_variant", "precision"}
    assets/<asset_id>/norm_stats.json

The architecture follows openpi: Gemma widths by variant name (`openpi/models/gemma.py`
`get_config`), SigLIP So400m/14 at 224 (`gemma_pytorch.PaliGemmaWithExpertModel`), the VLM
vocabulary read from the embedding's shape. pi0 and pi0.5 are told apart by their weights
(`time_mlp_in` is pi0.5's, `state_proj` pi0's), as config.json does not say. A `vision_config`
key in config.json (ours, absent in released checkpoints) replaces the SigLIP shape, for small
test models.

openpi's converter keeps the tied VLM embedding under `paligemma.lm_head.weight`
(`save_model` drops the other name) and the expert's unused `gemma_expert.lm_head.weight`;
the first is read as the embedding, the second ignored.

The processor (`OpenPIProcessor`) needs the norm stats and openpi's PaliGemma SentencePiece
tokenizer, which openpi downloads separately: place `paligemma_tokenizer.model` (or
`tokenizer.model`) in the checkpoint directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import safe_open

from vla_core.errors import CheckpointError
from vla_core.models import build_vla
from vla_core.models.weights import weight_files
from vla_paligemma.openpi_norm_stats import NORM_STATS_FILE
from vla_paligemma.openpi_processor import OpenPIProcessor
from vla_paligemma.openpi_tokenizer import find_tokenizer_file
from vla_paligemma.transformers_pi0 import checkpoint_keys, openpi_name_mapping

#: openpi `gemma.get_config`: width, depth, mlp_dim, num_heads, num_kv_heads, head_dim (LoRA variants: same shapes).
GEMMA_VARIANTS: dict[str, tuple[int, int, int, int, int, int]] = {
    "dummy": (64, 4, 128, 8, 1, 16),
    "gemma_300m": (1024, 18, 4096, 8, 1, 256),
    "gemma_2b": (2048, 18, 16384, 8, 1, 256),
}
#: The vision tower of every openpi pi0 / pi0.5 (transformers' PaliGemmaConfig default, intermediate 4304).
SIGLIP_SO400M_224 = {
    "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
    "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "vision_use_head": False,
}
_VLM = "paligemma_with_expert.paligemma"
_LM_HEAD = f"{_VLM}.lm_head.weight"
_EMBED = f"{_VLM}.model.language_model.embed_tokens.weight"


def is_openpi_config(config: dict[str, Any]) -> bool:
    """A config.json written by openpi's converter."""
    return "paligemma_variant" in config and "action_expert_variant" in config and config.get("format") != "vla"


def gemma_variant(name: str, where: str) -> dict[str, int]:
    """openpi variant name (with or without `_lora`) -> transformers Gemma fields."""
    base = name.removesuffix("_lora")
    if base not in GEMMA_VARIANTS:
        raise CheckpointError(f"config.json {where} is {name!r}; openpi's variants are {sorted(GEMMA_VARIANTS)}.")
    width, depth, mlp_dim, heads, kv_heads, head_dim = GEMMA_VARIANTS[base]
    return {"hidden_size": width, "num_hidden_layers": depth, "intermediate_size": mlp_dim,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim}


def _tensor_shape(path: Path, key: str) -> list[int] | None:
    for file in weight_files(path):
        with safe_open(str(file), "pt") as handle:
            if key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                return list(handle.get_slice(key).get_shape())
    return None


def openpi_spec(path: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """A PI0FlowMatching / PI05FlowMatching spec (with its weights and OpenPIProcessor) for an openpi directory."""
    path = Path(path)
    keys = set(checkpoint_keys(path))
    if "time_mlp_in.weight" in keys:
        pi05 = True
    elif "state_proj.weight" in keys:
        pi05 = False
    else:
        raise CheckpointError(
            f"'{path}' has openpi's config.json but its weights have neither state_proj (pi0) nor time_mlp_in (pi0.5): "
            "it is not a converted pi0 / pi0.5 checkpoint."
        )
    embedding = _EMBED if _EMBED in keys else _LM_HEAD
    vocab_shape = _tensor_shape(path, embedding)
    if vocab_shape is None:
        raise CheckpointError(f"'{path}' has no VLM token embedding ({_EMBED} or {_LM_HEAD}).")
    text = {"model_type": "gemma", "vocab_size": vocab_shape[0], "hidden_act": "gelu_pytorch_tanh",
            **gemma_variant(config["paligemma_variant"], "paligemma_variant")}
    expert = gemma_variant(config["action_expert_variant"], "action_expert_variant")
    width = expert["hidden_size"]
    mapping = openpi_name_mapping(pi05=pi05)
    if embedding == _LM_HEAD:
        mapping["vlm_backbone.language_model.embed_tokens"] = f"{_VLM}.lm_head"
    spec: dict[str, Any] = {
        "type": "PI05FlowMatching" if pi05 else "PI0FlowMatching",
        "vlm_backbone": {"type": "PaliGemma", "vlm_backbone_id": None, "vlm_config": {
            "text_config": text,
            "vision_config": dict(config.get("vision_config") or SIGLIP_SO400M_224),
            "projection_dim": text["hidden_size"],
            "image_token_id": text["vocab_size"],
        }},
        "llm_expert": {"type": "GemmaLLMBackbone", **expert, "vocab_size": 0,
                       **({"adarms_cond_dim": width} if pi05 else {})},
        "proj_width": width,
        "n_action_steps": int(config.get("action_horizon", 50)),
        "max_state_dim": int(config.get("action_dim", 32)),
        "max_action_dim": int(config.get("action_dim", 32)),
        "pretrained_name_or_path": str(path),
        "name_mapping": mapping,
    }
    return spec


def find_norm_stats(path: Path) -> Path | None:
    """`assets/<asset_id>/norm_stats.json` of a checkpoint: the only one, or an error naming them all."""
    found = sorted((path / "assets").glob(f"*/{NORM_STATS_FILE}")) if (path / "assets").is_dir() else []
    if len(found) > 1:
        raise CheckpointError(
            f"'{path}/assets' holds norm stats for several asset ids ({[p.parent.name for p in found]}); keep the one "
            "this robot uses (openpi picks it by the training config's asset_id)."
        )
    return found[0] if found else None


def openpi_processor(
    path: Path, model_type: str, config: dict[str, Any], image_size: int = 224
) -> OpenPIProcessor | None:
    """The OpenPIProcessor of a released checkpoint, or None when its norm stats or tokenizer file are absent."""
    stats, tokenizer = find_norm_stats(path), find_tokenizer_file(path)
    if stats is None or tokenizer is None:
        return None
    return OpenPIProcessor(
        model_type=model_type, tokenizer=str(tokenizer), norm_stats=str(stats),
        model_action_dim=int(config.get("action_dim", 32)), chunk_size=int(config.get("action_horizon", 50)),
        # Training-config fields the converter does not write; add them to config.json where they differ
        # from openpi's defaults (e.g. pi05_libero: "discrete_state_input": false).
        max_token_len=config.get("max_token_len"), discrete_state_input=config.get("discrete_state_input"),
        image_size=image_size,
    )


def processor_spec(processor: OpenPIProcessor) -> dict[str, Any]:
    """The `processor:` entry a saved checkpoint records (its files are written by processor.save_pretrained)."""
    return {"type": "OpenPIProcessor", **processor.config}


def load_openpi_checkpoint(path: str | Path, config: dict[str, Any]) -> Any:
    """Build the pi0 / pi0.5 of an openpi directory, load its weights (strict) and attach its processor."""
    path = Path(path)
    spec = openpi_spec(path, config)
    model_type = "pi05" if spec["type"] == "PI05FlowMatching" else "pi0"
    image_size = spec["vlm_backbone"]["vlm_config"]["vision_config"]["image_size"]
    processor = openpi_processor(path, model_type, config, image_size)
    if processor is not None:
        spec["processor"] = processor_spec(processor)
    vla = build_vla(spec)
    vla.processor = processor
    return vla
