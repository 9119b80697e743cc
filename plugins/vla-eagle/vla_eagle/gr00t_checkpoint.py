"""A GR00T N1.5 checkpoint directory as a vla model: `load_gr00t_n15(path)`.

The released layout (Isaac-GR00T `GR00T_N1_5.save_pretrained` plus its training run)::

    config.json                 model_type "gr00t_n1_5"; backbone_cfg, action_head_cfg
    model*.safetensors          backbone.* (Eagle) and action_head.* (flow-matching head)
    experiment_cfg/metadata.json  normalisation statistics and shapes per embodiment tag
    eagle2_hg_model/            Eagle's processor directory (tokenizer, chat template, image settings,
                                Eagle config.json); GR00T reads it from its own package
                                (gr00t/model/backbone/eagle2_hg_model), so copy it here

becomes `LlavaVLA(EagleBackbone (this plugin), FlowMatchingHead (vla-heads-flow))` with the
weights loaded through `name_mapping {vlm_backbone: backbone, vla_head: action_head}` and
`vla.processor` a `GR00TProcessor`. Both components are named by config, never imported,
so vla-heads-flow must be installed. `Policy.from_pretrained(path)` reaches this through the
`vla_load_foreign_checkpoint` hook (`vla_eagle.hooks`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vla_core.errors import CheckpointError, ConfigError

GR00T_MODEL_TYPES = ("gr00t_n1_5",)
EAGLE_DIR = "eagle2_hg_model"
METADATA = "experiment_cfg/metadata.json"
#: Eagle config.json keys that describe the runtime, not the architecture.
_NOT_ARCHITECTURE = ("architectures", "auto_map", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
                     "model_type", "_attn_implementation_autoset", "_attn_implementation")


def head_spec(cfg: dict[str, Any]) -> dict[str, Any]:
    """GR00T's `action_head_cfg` -> a FlowMatchingHead spec (the table in docs/heads-flow.md)."""
    dit, vl = cfg.get("diffusion_model_cfg") or {}, cfg.get("vl_self_attention_cfg") or {}
    heads, head_dim = int(dit.get("num_attention_heads", 32)), int(dit.get("attention_head_dim", 48))
    checks = [
        ("diffusion_model_cfg.num_attention_heads * attention_head_dim", heads * head_dim,
         "input_embedding_dim", int(cfg.get("input_embedding_dim", 1536))),
        ("diffusion_model_cfg.output_dim", int(dit.get("output_dim", cfg.get("hidden_size", 1024))),
         "hidden_size", int(cfg.get("hidden_size", 1024))),
        ("diffusion_model_cfg.cross_attention_dim", int(dit.get("cross_attention_dim", cfg["backbone_embedding_dim"])),
         "backbone_embedding_dim", int(cfg["backbone_embedding_dim"])),
    ]
    if cfg.get("use_vlln", True):
        checks.append(("vl_self_attention_cfg.num_attention_heads * attention_head_dim",
                       int(vl.get("num_attention_heads", 32)) * int(vl.get("attention_head_dim", 64)),
                       "backbone_embedding_dim", int(cfg["backbone_embedding_dim"])))
    for name, value, other, expected in checks:
        if value != expected:
            raise ConfigError(f"{name} is {value} but {other} is {expected}; GR00T's head needs them equal.",
                              "action_head_cfg")
    for key, supported in (("positional_embeddings", None), ("norm_type", "ada_norm")):
        if dit.get(key, supported) != supported:
            raise ConfigError(f"diffusion_model_cfg.{key} is {dit[key]!r}; only {supported!r} (GR00T N1.5's) is "
                              "implemented.", "action_head_cfg")
    return {
        "type": "FlowMatchingHead",
        "backbone_embedding_dim": int(cfg["backbone_embedding_dim"]),
        "state_dim": int(cfg.get("max_state_dim", 64)),
        "action_dim": int(cfg["action_dim"]),
        "traj_length": int(cfg["action_horizon"]),
        "hidden_size": int(cfg.get("hidden_size", 1024)),
        "input_embedding_dim": int(cfg.get("input_embedding_dim", 1536)),
        "num_layers": int(dit.get("num_layers", 16)),
        "num_heads": heads,
        "interleave_self_attention": bool(dit.get("interleave_self_attention", True)),
        "dropout": float(dit.get("dropout", 0.2)),
        "final_dropout": bool(dit.get("final_dropout", True)),
        "use_vlln": bool(cfg.get("use_vlln", True)),
        "vl_self_attention_layers": int(vl.get("num_layers", 4)),
        "vl_self_attention_heads": int(vl.get("num_attention_heads", 32)),
        "num_target_vision_tokens": int(cfg.get("num_target_vision_tokens", 32)),
        "max_num_embodiments": int(cfg.get("max_num_embodiments", 32)),
        "add_pos_embed": bool(cfg.get("add_pos_embed", True)),
        "max_seq_len": int(cfg.get("max_seq_len", 1024)),
        "noise_beta_alpha": float(cfg.get("noise_beta_alpha", 1.5)),
        "noise_beta_beta": float(cfg.get("noise_beta_beta", 1.0)),
        "noise_s": float(cfg.get("noise_s", 0.999)),
        "num_timestep_buckets": int(cfg.get("num_timestep_buckets", 1000)),
        "num_inference_timesteps": int(cfg.get("num_inference_timesteps", 4)),
    }


def backbone_spec(cfg: dict[str, Any], eagle_config: dict[str, Any] | None) -> dict[str, Any]:
    """GR00T's `backbone_cfg` (+ the Eagle config.json when present) -> an EagleBackbone spec.

    Without an Eagle config the `groot_n15` preset (the released architecture) is used."""
    spec: dict[str, Any] = {
        "type": "EagleBackbone",
        "select_layer": int(cfg.get("select_layer", 12)),
        "project_to_dim": cfg.get("project_to_dim"),
        "tune_llm": bool(cfg.get("tune_llm", False)),
        "tune_visual": bool(cfg.get("tune_visual", True)),
        "image_token_placement": "placeholders",
    }
    if eagle_config is None:
        return spec
    text = {k: v for k, v in eagle_config.get("text_config", {}).items() if k not in _NOT_ARCHITECTURE}
    vision = {k: v for k, v in eagle_config.get("vision_config", {}).items() if k not in _NOT_ARCHITECTURE}
    model_type = eagle_config.get("text_config", {}).get("model_type", "qwen3")
    if model_type not in ("qwen3", "qwen2", "llama"):
        raise ConfigError(f"the Eagle language model is '{model_type}'; EagleBackbone builds qwen3, qwen2 or llama.",
                          "eagle2_hg_model/config.json")
    spec.update(
        preset=None, vision_config=vision, text_config=text, text_model_type=model_type,
        use_pixel_shuffle=bool(eagle_config.get("use_pixel_shuffle", False)),
        downsample_ratio=float(eagle_config.get("downsample_ratio", 0.5)),
        mlp_connector_layers=int(eagle_config.get("mlp_connector_layers", 1)),
        vision_select_layer=int(eagle_config.get("select_layer", -1)),
        image_token_id=int(eagle_config.get("image_token_index", 151669)),
    )
    return spec


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} could not be read as JSON ({exc}).") from None


def gr00t_processor_settings(path: Path, eagle_dir: Path, head: dict[str, Any]) -> dict[str, Any]:
    """GR00TProcessor settings read from the checkpoint: widths and horizon from the head, image
    normalisation from Eagle's preprocessor_config.json."""
    settings = {"max_state_dim": head["state_dim"], "max_action_dim": head["action_dim"],
                "action_horizon": head["traj_length"]}
    preprocessor = eagle_dir / "preprocessor_config.json"
    if preprocessor.is_file():
        saved = _read_json(preprocessor)
        for ours, theirs in (("image_mean", "image_mean"), ("image_std", "image_std")):
            values = saved.get(theirs)
            if values is not None:
                values = [float(v) for v in values] if isinstance(values, list) else [float(values)]
                if len(set(values)) != 1:
                    raise ConfigError(f"{preprocessor}: per-channel {theirs} {values} is not supported (GR00T N1.5 "
                                      "uses 0.5 for every channel).", "processor")
                settings[ours] = values[0]
        size = (saved.get("size") or {}).get("height")
        if size is not None:
            settings["image_size"] = int(size)
    return settings


def load_gr00t_n15(
    path: str | Path, config: dict[str, Any] | None = None, *, embodiment_tag: str | None = None,
    **processor_settings: Any,
) -> Any:
    """A GR00T N1.5 checkpoint directory -> LlavaVLA (eval mode) with `vla.processor` a GR00TProcessor.

    Args:
        path: the checkpoint directory (layout in the module docstring).
        config: its parsed config.json (read when None).
        embodiment_tag: the metadata.json entry (and projector) to use; None when it has one entry.
        processor_settings: further GR00TProcessor settings (video_keys, state_norm, crop_scale, ...) for
            data configs that differ from GR00T's defaults.
    """
    from vla_core.models.build import build_vla
    from vla_core.models.weights import load_into, load_state_dict
    from vla_eagle.gr00t_processor import GR00TProcessor

    path = Path(path)
    config = _read_json(path / "config.json") if config is None else config
    if config.get("model_type") not in GR00T_MODEL_TYPES:
        raise CheckpointError(f"'{path}' is not a GR00T N1.5 checkpoint (model_type {config.get('model_type')!r}).")
    eagle_dir = path / EAGLE_DIR
    if not eagle_dir.is_dir():
        raise CheckpointError(
            f"'{path}' has no {EAGLE_DIR}/ directory. GR00T N1.5 checkpoints do not ship Eagle's tokenizer and "
            f"processor settings (GR00T reads them from its package): copy Isaac-GR00T's "
            f"gr00t/model/backbone/{EAGLE_DIR} into '{path}'."
        )
    try:
        head = head_spec(config["action_head_cfg"])
        eagle_config = _read_json(eagle_dir / "config.json") if (eagle_dir / "config.json").is_file() else None
        backbone = backbone_spec(config["backbone_cfg"], eagle_config)
    except KeyError as exc:
        raise CheckpointError(f"{path / 'config.json'} has no {exc}; it is not a complete GR00T N1.5 config.") from None
    settings = {**gr00t_processor_settings(path, eagle_dir, head), "embodiment_tag": embodiment_tag,
                **processor_settings}
    processor = GR00TProcessor(metadata=str(path / METADATA), tokenizer=str(eagle_dir), **settings)
    backbone["image_token_id"] = processor.image_token_id
    spec = {
        "type": "LlavaVLA",
        "vlm_backbone": backbone,
        "vla_head": head,
        # what a saved vla checkpoint records: the preset, without this directory's paths
        "processor": {"type": "GR00TProcessor", **{**processor.config, "embodiment_tag": processor.meta.tag}},
    }
    vla = build_vla(spec)
    if processor.markup.per_tile != vla.vlm_backbone.tokens_per_image:
        raise CheckpointError(
            f"{eagle_dir / 'processor_config.json'} writes {processor.markup.per_tile} image tokens per image, but "
            f"the Eagle model makes {vla.vlm_backbone.tokens_per_image}; use the eagle2_hg_model directory of the "
            "Isaac-GR00T release the checkpoint was trained with."
        )
    vla.load_report = load_into(vla, load_state_dict(path), {"vlm_backbone": "backbone", "vla_head": "action_head"},
                                strict=True, source=str(path))
    vla.checkpoint_dir = path
    vla.checkpoint_config = config
    vla.processor = processor
    return vla.eval()


def convert_gr00t_n15(source: str | Path, target: str | Path, *, embodiment_tag: str | None = None,
                      **processor_settings: Any) -> Path:
    """Write a GR00T N1.5 checkpoint as a vla checkpoint (config naming GR00TProcessor, weights,
    processor/), atomically with checksums; `Policy.from_pretrained(target)` then needs no hook."""
    from vla_core.checksums import checkpoint_directory

    vla = load_gr00t_n15(source, embodiment_tag=embodiment_tag, **processor_settings)
    with checkpoint_directory(target) as tmp:
        vla.write_pretrained(tmp)
        vla.processor.save_pretrained(tmp)
    return Path(target)
