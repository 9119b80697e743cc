"""FluxVLA's names for OpenVLA's parts, with FluxVLA's parameter names, building ours.

    DinoSigLIPViTBackbone  -> PrismaticVisionBackbone (DINOv2 ViT-L/14 reg4 + SigLIP SO400M/14)
    FusedMLPProjector      -> PrismaticProjector (arch "fused-gelu-mlp")
    LLaMa2LLMBackbone      -> transformers' LlamaForCausalLM, LLaMA-2 7B sizes (OpenVLA's language model)
    OpenVLAHead            -> the action-token <-> action mapping OpenVLA decodes with

Each is the same computation as the part OpenVLA already has here, so the weights keep
our (Hugging Face OpenVLA) names; docs/fluxvla.md maps FluxVLA's module names onto them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vla_core.errors import ConfigError
from vla_core.models.architecture import transformers_config_dict
from vla_core.protocols import BackboneOutput
from vla_openvla.action_tokenizer import ActionTokenizer
from vla_openvla.language_model import OPENVLA_7B_TEXT_CONFIG, build_language_model
from vla_openvla.projectors import PrismaticProjector
from vla_openvla.vision_backbone import DINOV2_VIT_L, SIGLIP_SO400M_224, PrismaticVisionBackbone

#: FluxVLA's vision_backbone_id -> the timm featurizers (prismatic's registry of the same ids).
DINOSIGLIP_IDS: dict[str, tuple[str, str]] = {
    "dinosiglip-vit-so-224px": (DINOV2_VIT_L, SIGLIP_SO400M_224),
    "dinosiglip-vit-so-384px": (DINOV2_VIT_L, "vit_so400m_patch14_siglip_384"),
}

#: FluxVLA's llm_backbone_id -> transformers LlamaConfig sizes of the hub model it names.
LLAMA2_IDS: dict[str, dict[str, Any]] = {
    "llama2-7b-pure_causal": {},
    "llama2-7b-pure": {},
    "llama2-7b-chat_causal": {},
    "vicuna-v15-7b_causal": {},
    "llama2-13b-pure_causal": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                               "num_attention_heads": 40, "num_key_value_heads": 40},
    "llama2-13b-chat_causal": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                               "num_attention_heads": 40, "num_key_value_heads": 40},
}


def _lookup(table: dict[str, Any], key: str, name: str) -> Any:
    if key not in table:
        raise ConfigError(f"'{key}' is not one of FluxVLA's ids here: {', '.join(table)}.", name)
    return table[key]


class DinoSigLIPViTBackbone(PrismaticVisionBackbone):
    """FluxVLA's fused DINOv2 + SigLIP featurizer: (B, C, H, W) -> (B, P, 1024 + 1152) patch features
    of each ViT's second-to-last block, concatenated (OpenVLA's vision backbone).

    Args:
        vision_backbone_id: "dinosiglip-vit-so-224px" (OpenVLA) or "dinosiglip-vit-so-384px".
        dino_config: DINOv2 settings; image_size and patch_size are used (the rest of FluxVLA's timm
            pretrained_cfg describes download sources).
        siglip_config: SigLIP settings; image_size and patch_size are used.
        pretrained: FluxVLA downloads timm weights when true; nothing is downloaded here (load a
            checkpoint with pretrained_name_or_path), so this is recorded only.
        img_size: input resolution when the configs give no image_size.
    """

    def __init__(
        self,
        vision_backbone_id: str = "dinosiglip-vit-so-224px",
        dino_config: dict[str, Any] | None = None,
        siglip_config: dict[str, Any] | None = None,
        pretrained: bool = True,
        img_size: int = 224,
    ) -> None:
        ids = _lookup(DINOSIGLIP_IDS, vision_backbone_id, "vision_backbone_id")
        configs = [dict(dino_config or {}), dict(siglip_config or {})]
        sizes = tuple(int(c.get("image_size", img_size)) for c in configs)
        overrides = tuple({"patch_size": int(c["patch_size"])} if "patch_size" in c else {} for c in configs)
        super().__init__(timm_model_ids=ids, image_sizes=sizes, timm_overrides=overrides)
        self.vision_backbone_id, self.pretrained = vision_backbone_id, pretrained


class FusedMLPProjector(PrismaticProjector):
    """FluxVLA's fused projector: Linear(d, 4d), GELU, Linear(4d, llm_dim), GELU, Linear(llm_dim, llm_dim).

    Args:
        fused_vision_dim: width of the fused vision features (2176 for DinoSigLIP).
        llm_dim: width of the language model (4096 for LLaMA-2 7B).
        mlp_type: "fused-gelu-mlp", the only type FluxVLA's class has.
    """

    def __init__(self, fused_vision_dim: int, llm_dim: int, mlp_type: str = "fused-gelu-mlp") -> None:
        if mlp_type != "fused-gelu-mlp":
            raise ConfigError(f"is '{mlp_type}'; FusedMLPProjector has only 'fused-gelu-mlp' (use "
                              "PrismaticProjector for gelu-mlp or linear).", "mlp_type")
        super().__init__(fused_vision_dim, llm_dim, "fused-gelu-mlp")


class LLaMa2LLMBackbone(nn.Module):
    """FluxVLA's LLaMA-2 backbone: transformers' LlamaForCausalLM (`llm`), LLaMA-2 7B sizes by default,
    with the embedding table resized to `tokenizer_length` padded to a multiple of 64 (32001 -> 32064),
    as FluxVLA does after adding the pad token. OpenVLA uses `llm` as its language model.

    Args:
        llm_backbone_id: which LLaMA-2 ("llama2-7b-pure_causal", "llama2-13b-pure_causal", ...): the sizes of
            the hub model FluxVLA's id names.
        llm_family: FluxVLA's family name ("llama2"); checked.
        llm_path: a local directory holding a LLaMA-2 model (config.json + weights); nothing is downloaded.
        llm_config: LlamaConfig overrides on the id's sizes (e.g. a tiny hidden_size).
        llm_max_length: the tokenizer's length limit (FluxVLA: 2048); recorded, no effect on the weights.
        pad_token_id: id of the added pad token.
        tokenizer_length: tokenizer size after adding the pad token; the table is padded to a multiple of 64.
    """

    #: Its config.json sets the architecture; checkpoints record it (resolved_parameters).
    architecture_paths = ("llm_path",)

    def __init__(
        self,
        llm_backbone_id: str = "llama2-7b-pure_causal",
        llm_family: str = "llama2",
        llm_path: str | None = None,
        llm_config: dict[str, Any] | None = None,
        llm_max_length: int = 2048,
        pad_token_id: int = 32000,
        tokenizer_length: int = 32001,
    ) -> None:
        super().__init__()
        if llm_family != "llama2":
            raise ConfigError(f"is '{llm_family}'; LLaMa2LLMBackbone builds the llama2 family.", "llm_family")
        sizes = _lookup(LLAMA2_IDS, llm_backbone_id, "llm_backbone_id")
        padded = -(-tokenizer_length // 64) * 64
        config = {**OPENVLA_7B_TEXT_CONFIG, **sizes, "vocab_size": padded, "pad_token_id": pad_token_id,
                  **(llm_config or {})}
        if llm_path is not None:
            from transformers import AutoModelForCausalLM

            self.llm = AutoModelForCausalLM.from_pretrained(llm_path, local_files_only=True, dtype=torch.float32)
            self.llm.resize_token_embeddings(tokenizer_length, pad_to_multiple_of=64)
        else:
            self.llm = build_language_model(config)
        self.text_config = {k: v for k, v in self.llm.config.to_dict().items() if k in config}
        self.hidden_size: int = int(self.llm.config.hidden_size)
        self.llm_backbone_id, self.llm_max_length = llm_backbone_id, llm_max_length

    def resolved_parameters(self) -> dict[str, Any]:
        """The LLaMA config it was built with (the table already padded), so a checkpoint rebuilds it
        without llm_path."""
        config = transformers_config_dict(self.llm.config)
        # llm_config (applied last) carries the pad id and the padded vocabulary size.
        return {"llm_path": None, "llm_config": config,
                "tokenizer_length": int(self.llm.get_input_embeddings().num_embeddings)}

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> (B, L, hidden_size)."""
        return self.llm.get_input_embeddings()(tokens)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> BackboneOutput:
        """inputs_embeds (B, S, hidden_size), attention_mask (B, S) bool -> final hidden states (B, S, hidden_size)."""
        out = self.llm.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long(), use_cache=False)
        return BackboneOutput(out.last_hidden_state, attention_mask.bool(), None)


class OpenVLAHead(nn.Module):
    """OpenVLA's token head: the last `n_action_bins` ids of the tokenizer's vocabulary are action bins.

    As a head it reads, for each action dim, the language model's logits at the position that predicts
    that dim's token (B, A, V): training is cross-entropy against the binned targets, prediction the
    argmax mapped to bin centres. OpenVLA builds those logits with LLaMA's LM head; FluxVLA's
    `OpenVLAHead` is the decoding half of the same mapping.

    Args:
        norm_stats: FluxVLA's per-dataset statistics ({dataset: {"action": {"q01", "q99", "mask"}}}); when
            given, `unnormalize` maps [-1, 1] actions to robot units with them (our processor does this
            from the checkpoint's statistics otherwise).
        vocab_size: tokenizer vocabulary whose last ids are the action bins (32000 for LLaMA-2).
        n_action_bins: number of uniform bins over [-1, 1].
    """

    def __init__(self, norm_stats: dict[str, Any] | None = None, vocab_size: int = 32000,
                 n_action_bins: int = 256) -> None:
        super().__init__()
        self.norm_stats, self.vocab_size = norm_stats, vocab_size
        self.action_tokenizer = ActionTokenizer(vocab_size, n_action_bins)

    def forward(self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor,
                actions: torch.Tensor, action_masks: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """input_features (B, A, V) logits predicting the A action tokens; actions (B, T, >= A) normalised
        (the first step is the target); action_masks (B, T) -> {"loss", "pred_actions" (B, 1, A), "loss_weight"}."""
        dims = input_features.shape[1]
        targets = self.action_tokenizer.encode(actions[:, 0, :dims])  # (B, A)
        valid = action_masks[:, 0].bool()
        losses = nn.functional.cross_entropy(input_features.float().transpose(1, 2), targets, reduction="none")
        weight = (valid.sum() * dims).clamp(min=1)
        loss = (losses * valid[:, None]).sum() / weight
        return {"loss": loss, "pred_actions": self.predict_action(input_features.detach(), states, attention_mask),
                "loss_weight": (valid.sum() * dims).float()}

    def predict_action(self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor,
                       **kwargs: Any) -> torch.Tensor:
        """input_features (B, A, V) logits -> (B, 1, A) normalised actions at the argmax tokens' bin centres."""
        return self.action_tokenizer.decode(input_features.argmax(dim=-1)).unsqueeze(1)

    def unnormalize(self, actions: torch.Tensor, unnorm_key: str | None = None) -> torch.Tensor:
        """(..., A) in [-1, 1] -> robot units with norm_stats' q01/q99 (dims with mask False pass unchanged)."""
        if not self.norm_stats:
            raise ConfigError("has no statistics; give norm_stats or unnormalise with the checkpoint's processor.",
                              "norm_stats")
        if unnorm_key is None and len(self.norm_stats) != 1:
            raise ConfigError(f"holds {len(self.norm_stats)} datasets; pass unnorm_key (one of "
                              f"{', '.join(self.norm_stats)}).", "norm_stats")
        stats = self.norm_stats[unnorm_key or next(iter(self.norm_stats))]["action"]
        low, high = torch.tensor(stats["q01"]), torch.tensor(stats["q99"])
        mask = torch.tensor(stats.get("mask", [True] * len(stats["q01"])), dtype=torch.bool)
        return torch.where(mask, 0.5 * (actions + 1) * (high - low) + low, actions)
