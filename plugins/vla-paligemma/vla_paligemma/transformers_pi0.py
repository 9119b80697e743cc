"""Foreign pi0 checkpoints: transformers' PI0 directories, and the openpi / LeRobot key layouts.

Our names differ from each layout by a few prefixes only, so each is a `name_mapping`
(`{our_prefix: checkpoint_prefix}`, the longest checkpoint prefix wins). With
`pg` = `paligemma_with_expert.paligemma.model` and `ge` = `paligemma_with_expert.gemma_expert`:

    ours                                PI0 save_pretrained (disk)   PI0 state_dict() (memory)
    vlm_backbone.vision_tower           pg.vision_tower              model.vlm.vision_tower
    vlm_backbone.multi_modal_projector  pg.multi_modal_projector     model.vlm.multi_modal_projector
    vlm_backbone.language_model         pg.language_model.model      model.vlm.language_model
    llm_expert                          ge.model                     model.dit
    llm_expert.embed_tokens             ge.lm_head                   model.dit.embed_tokens
    state_proj, action_in_proj,         the same names               embed_action_time.<name>
      action_time_mlp_in, _out
    action_out_proj                     action_out_proj              action_out_proj

transformers writes the hub layout on save (its conversion mapping, reversed), so a
`save_pretrained` directory uses the middle column. openpi's `PI0Pytorch` is that layout
with SigLIP under `pg.vision_tower.vision_model`, the language model under
`pg.language_model` and no expert embedding (vocab_size 0); pi0.5 names its time MLP
`time_mlp_in` / `time_mlp_out`, as we do. LeRobot's PI0Policy is openpi's layout under `model.`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from safetensors import safe_open

from vla_core.errors import CheckpointError
from vla_core.models import build_vla
from vla_core.models.weights import weight_files
from vla_paligemma.gemma_expert import expert_spec_from_gemma_config

_HEADS = ("state_proj", "action_in_proj", "action_time_mlp_in", "action_time_mlp_out", "action_out_proj")

#: `PI0ForConditionalGeneration.save_pretrained` directories (the hub layout).
TRANSFORMERS_PI0_NAME_MAPPING: dict[str, str] = {
    "vlm_backbone.vision_tower": "paligemma_with_expert.paligemma.model.vision_tower",
    "vlm_backbone.multi_modal_projector": "paligemma_with_expert.paligemma.model.multi_modal_projector",
    "vlm_backbone.language_model": "paligemma_with_expert.paligemma.model.language_model.model",
    "llm_expert": "paligemma_with_expert.gemma_expert.model",
    "llm_expert.embed_tokens": "paligemma_with_expert.gemma_expert.lm_head",
    **{name: name for name in _HEADS},
}

#: `PI0ForConditionalGeneration.state_dict()` as it is in memory.
TRANSFORMERS_PI0_MEMORY_NAME_MAPPING: dict[str, str] = {
    "vlm_backbone": "model.vlm",
    "llm_expert": "model.dit",
    **{name: f"embed_action_time.{name}" for name in _HEADS if name != "action_out_proj"},
    "action_out_proj": "action_out_proj",
}


def transformers_pi0_mapping(checkpoint_keys: Iterable[str]) -> dict[str, str]:
    """The mapping that fits these keys: in-memory names (`model.vlm.*`) or the saved layout."""
    if any(key.startswith("model.vlm.") for key in checkpoint_keys):
        return dict(TRANSFORMERS_PI0_MEMORY_NAME_MAPPING)
    return dict(TRANSFORMERS_PI0_NAME_MAPPING)


def checkpoint_keys(path: str | Path) -> list[str]:
    """Tensor names of a safetensors checkpoint, read from the headers only."""
    keys: list[str] = []
    for file in weight_files(path):
        with safe_open(str(file), "pt") as handle:
            keys.extend(handle.keys())
    return keys


def openpi_name_mapping(pi05: bool = False, lerobot: bool = False) -> dict[str, str]:
    """The mapping for an openpi `PI0Pytorch` state dict (LeRobot's PI0Policy: the same under `model.`).

    openpi saves the VLM's tied LM head once, as `paligemma.lm_head.weight`, on some
    exports only; rename it to `...language_model.embed_tokens.weight` first if so.
    """
    root = "model." if lerobot else ""
    paligemma = f"{root}paligemma_with_expert.paligemma.model"
    mapping = {
        "vlm_backbone.vision_tower": f"{paligemma}.vision_tower.vision_model",
        "vlm_backbone.multi_modal_projector": f"{paligemma}.multi_modal_projector",
        "vlm_backbone.language_model": f"{paligemma}.language_model",
        "llm_expert": f"{root}paligemma_with_expert.gemma_expert.model",
        "action_in_proj": f"{root}action_in_proj",
        "action_out_proj": f"{root}action_out_proj",
    }
    if pi05:
        mapping |= {"time_mlp_in": f"{root}time_mlp_in", "time_mlp_out": f"{root}time_mlp_out"}
    else:
        mapping |= {name: f"{root}{name}" for name in ("state_proj", "action_time_mlp_in", "action_time_mlp_out")}
    return mapping


_TEXT_KEYS = (
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "rope_parameters", "attention_bias",
    "max_position_embeddings", "pad_token_id",
)
_VISION_KEYS = (
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
    "image_size", "patch_size", "hidden_act", "layer_norm_eps", "vision_use_head",
)


def paligemma_architecture(vlm_config: dict[str, Any]) -> dict[str, Any]:
    """The architecture fields of a serialised PaliGemmaConfig (drops labels, versions, ...)."""
    text, vision = vlm_config.get("text_config", {}), vlm_config.get("vision_config", {})
    image_token = vlm_config.get("image_token_id", vlm_config.get("image_token_index"))
    return {
        "text_config": {k: text[k] for k in _TEXT_KEYS if k in text},
        "vision_config": {k: vision[k] for k in _VISION_KEYS if k in vision},
        "projection_dim": vlm_config.get("projection_dim", vision.get("projection_dim")),
        "image_token_id": image_token,
    }


def pi0_spec_from_transformers_config(config: dict[str, Any]) -> dict[str, Any]:
    """A PI0FlowMatching spec with the architecture of a transformers PI0Config dict."""
    try:
        vlm, dit = config["vlm_config"], config["dit_config"]
        return {
            "type": "PI0FlowMatching",
            "vlm_backbone": {"type": "PaliGemma", "vlm_backbone_id": None, "vlm_config": paligemma_architecture(vlm)},
            "llm_expert": expert_spec_from_gemma_config(dit),
            "proj_width": dit["hidden_size"],
            "n_action_steps": config.get("chunk_size", 50),
            "max_state_dim": config.get("max_state_dim", 32),
            "max_action_dim": config.get("max_action_dim", 32),
            "num_inference_steps": config.get("num_inference_steps", 10),
            "time_sampling_beta_alpha": config.get("time_sampling_beta_alpha", 1.5),
            "time_sampling_beta_beta": config.get("time_sampling_beta_beta", 1.0),
            "time_sampling_scale": config.get("time_sampling_scale", 0.999),
            "time_sampling_offset": config.get("time_sampling_offset", 0.001),
            "min_period": config.get("min_period", 4e-3),
            "max_period": config.get("max_period", 4.0),
        }
    except KeyError as exc:
        raise CheckpointError(
            f"this PI0 config.json lacks {exc}: it is not a complete transformers PI0Config. "
            "Re-save the model with PI0ForConditionalGeneration.save_pretrained."
        ) from None


def load_transformers_pi0(path: str | Path, config: dict[str, Any]) -> Any:
    """Build a PI0FlowMatching from a transformers PI0 directory and load its weights
    (strict: a missing, unexpected or mis-shaped tensor raises a CheckpointError naming it).

    With openpi's `assets/<asset_id>/norm_stats.json` and the PaliGemma SentencePiece tokenizer
    file in the directory it also gets openpi's processor (`OpenPIProcessor`, pi0), recorded in
    its spec; transformers' own `PI0Processor` is not what openpi runs (see docs/paligemma.md).
    """
    from vla_paligemma.openpi_checkpoint import openpi_processor, processor_spec

    path = Path(path)
    spec = pi0_spec_from_transformers_config(config)
    mapping = transformers_pi0_mapping(checkpoint_keys(path))
    spec |= {"pretrained_name_or_path": str(path), "name_mapping": mapping}
    image_size = spec["vlm_backbone"]["vlm_config"]["vision_config"].get("image_size", 224)
    processor = openpi_processor(
        path, "pi0", {"action_dim": spec["max_action_dim"], "action_horizon": spec["n_action_steps"]}, image_size
    )
    if processor is not None:
        spec["processor"] = processor_spec(processor)
    vla = build_vla(spec)
    vla.processor = processor
    return vla
