"""FlowMatchingHead: the GR00T N1.5 action head (Isaac-GR00T `FlowmatchingActionHead`).

Training: sample t ~ (s - Beta(1.5, 1)) / s, mix x_t = (1 - t) noise + t actions, and
regress the velocity (actions - noise) with a masked MSE. The DiT reads the sequence
[state token, learned future tokens, action tokens] and cross-attends to the backbone
features (after `vlln` LayerNorm and `vl_self_attention`); time enters as a discretised
bucket (t * num_timestep_buckets) through the action encoder and the AdaLN blocks.

Inference: Euler integration from noise (t = 0) to actions (t = 1) in
`num_inference_timesteps` steps.

Every parameter name follows the reference, so a GR00T N1.5 checkpoint's `action_head.*`
loads into `vla_head.*` with `name_mapping={"vla_head": "action_head"}`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import ConfigError
from vla_core.models.rtc_guidance import RTCGuidance, guided_velocity
from vla_core.rtc import RTCError
from vla_heads_flow.action_encoder import MultiEmbodimentActionEncoder
from vla_heads_flow.dit import DiT, SelfAttentionTransformer
from vla_heads_flow.embodiment import CategorySpecificMLP, resolve_embodiment_ids
from vla_heads_flow.inputs import check_chunk, check_features, pad_action_dim, state_tokens


class FlowMatchingHead(nn.Module):
    """GR00T N1.5 flow-matching DiT action head; defaults are the released N1.5 sizes.

    Extra batch keys: `embodiment_id` (B,) long (default 0); `noise` (B, T, A) for
    reproducible sampling and training; `flow_time` (B,) to fix the training time.

    Args:
        backbone_embedding_dim: width of the backbone features (GR00T N1.5: 2048, Eagle's LLM width).
        state_dim: width of the state input (GR00T: max_state_dim); shorter states are zero-padded.
        action_dim: width of one action (GR00T: max_action_dim); the model works at this width.
        traj_length: number of actions in a chunk (GR00T: action_horizon).
        ori_action_dim: the robot's real action width; predictions and the loss are cut to it.
            None uses all of action_dim. As in GR00T, the padded dims beyond it are still
            sampled (noise over all action_dim dims) and integrated; see zero_padded_action_dims.
        hidden_size: width of the state/action MLPs and of the DiT output (GR00T: 1024).
        input_embedding_dim: token width inside the DiT, num_heads * head_dim (GR00T: 1536).
        num_layers: number of DiT blocks (GR00T N1.5: 16).
        num_heads: attention heads per DiT block (GR00T N1.5: 32, of width 48).
        interleave_self_attention: odd DiT blocks attend to the tokens instead of the backbone features.
        dropout: dropout inside the DiT and vl_self_attention blocks (GR00T: 0.2).
        final_dropout: dropout on attention outputs and at the end of feed-forwards.
        use_vlln: LayerNorm and self-attention blocks over the backbone features before the DiT
            (GR00T's `vlln` and `vl_self_attention`); false builds neither, as in GR00T.
        vl_self_attention_layers: self-attention blocks over the backbone features (GR00T N1.5: 4) when
            use_vlln is true; 0 disables them.
        vl_self_attention_heads: heads of those blocks; backbone_embedding_dim must divide by it.
        num_target_vision_tokens: number of learned `future_tokens` placed between state and actions.
        max_num_embodiments: number of per-embodiment encoder/decoder weight sets.
        add_pos_embed: add a learned position embedding to the action tokens.
        max_seq_len: rows of that position embedding (at least traj_length).
        noise_beta_alpha: alpha of the Beta distribution of the training time.
        noise_beta_beta: beta of the Beta distribution of the training time.
        noise_s: the training time is t = (noise_s - u) / noise_s with u ~ Beta(alpha, beta).
        num_timestep_buckets: the continuous time t in [0, 1] is fed as int(t * buckets).
        num_inference_timesteps: Euler steps in predict_action.
        num_steps: FluxVLA's name for the chunk length (its head samples and returns `num_steps`
            actions; a `traj_length` next to it is ignored there); when set it replaces traj_length.
        mask_padding: mask padded backbone positions (attention_mask False) as keys in
            vl_self_attention and cross-attention (a deviation, off by default: the reference
            attends to every position; without padding both are identical).
        zero_padded_action_dims: hold the action dims beyond ori_action_dim at zero in the noise
            and after every Euler step (a deviation, off by default: GR00T draws noise over all
            action_dim dims and never zeroes them, which changes the real dims through attention).
    """

    supports_compile: bool = False
    supports_kv_cache: bool = False
    supports_rtc: bool = True  # predict_action(..., rtc=RTCGuidance): real-time chunking

    def __init__(
        self,
        backbone_embedding_dim: int = 2048,
        state_dim: int = 64,
        action_dim: int = 32,
        traj_length: int = 16,
        ori_action_dim: int | None = None,
        hidden_size: int = 1024,
        input_embedding_dim: int = 1536,
        num_layers: int = 16,
        num_heads: int = 32,
        interleave_self_attention: bool = True,
        dropout: float = 0.2,
        final_dropout: bool = True,
        use_vlln: bool = True,
        vl_self_attention_layers: int = 4,
        vl_self_attention_heads: int = 32,
        num_target_vision_tokens: int = 32,
        max_num_embodiments: int = 32,
        add_pos_embed: bool = True,
        max_seq_len: int = 1024,
        noise_beta_alpha: float = 1.5,
        noise_beta_beta: float = 1.0,
        noise_s: float = 0.999,
        num_timestep_buckets: int = 1000,
        num_inference_timesteps: int = 4,
        mask_padding: bool = False,
        num_steps: int | None = None,
        zero_padded_action_dims: bool = False,
    ) -> None:
        super().__init__()
        if num_steps is not None:  # FluxVLA: num_steps is the action horizon, traj_length is unused
            traj_length = num_steps
        _check_sizes(locals())
        self.backbone_embedding_dim = backbone_embedding_dim
        self.state_dim, self.action_dim, self.traj_length = state_dim, action_dim, traj_length
        self.ori_action_dim = ori_action_dim
        self.hidden_size, self.input_embedding_dim = hidden_size, input_embedding_dim
        self.max_num_embodiments = max_num_embodiments
        self.add_pos_embed, self.mask_padding = add_pos_embed, mask_padding
        self.zero_padded_action_dims = zero_padded_action_dims
        self.noise_beta_alpha, self.noise_beta_beta, self.noise_s = noise_beta_alpha, noise_beta_beta, noise_s
        self.num_timestep_buckets = num_timestep_buckets
        self.num_inference_timesteps = num_inference_timesteps

        self.model = DiT(
            num_attention_heads=num_heads,
            attention_head_dim=input_embedding_dim // num_heads,
            output_dim=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            cross_attention_dim=backbone_embedding_dim,
            interleave_self_attention=interleave_self_attention,
            final_dropout=final_dropout,
        )
        self.state_encoder = CategorySpecificMLP(max_num_embodiments, state_dim, hidden_size, input_embedding_dim)
        self.action_encoder = MultiEmbodimentActionEncoder(action_dim, input_embedding_dim, max_num_embodiments)
        self.action_decoder = CategorySpecificMLP(max_num_embodiments, hidden_size, hidden_size, action_dim)
        self.future_tokens = nn.Embedding(num_target_vision_tokens, input_embedding_dim)
        nn.init.normal_(self.future_tokens.weight, mean=0.0, std=0.02)
        self.use_vlln = use_vlln
        # GR00T builds both from `use_vlln` (FlowmatchingActionHead.__init__): without it, neither exists.
        self.vlln: nn.Module = nn.LayerNorm(backbone_embedding_dim) if use_vlln else nn.Identity()
        self.vl_self_attention: SelfAttentionTransformer | None = (
            SelfAttentionTransformer(
                num_attention_heads=vl_self_attention_heads,
                attention_head_dim=backbone_embedding_dim // vl_self_attention_heads,
                num_layers=vl_self_attention_layers,
                dropout=dropout,
                final_dropout=final_dropout,
            )
            if use_vlln and vl_self_attention_layers > 0
            else None
        )
        if add_pos_embed:
            self.position_embedding = nn.Embedding(max_seq_len, input_embedding_dim)
            nn.init.normal_(self.position_embedding.weight, mean=0.0, std=0.02)

    # ---- pieces shared by training, predict_action and the inference head ---------------
    @property
    def out_action_dim(self) -> int:
        """Width of what the head returns: ori_action_dim when set, else action_dim."""
        return self.ori_action_dim or self.action_dim

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """Shard each DiT / vl_self_attention block as one FSDP2 unit."""
        from vla_heads_flow.dit import BasicTransformerBlock

        return {BasicTransformerBlock}

    def prepare_inputs(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Checks and casts -> features (B, S, D), key mask (B, S) or None, state (B, 1, state_dim),
        embodiment ids (B,)."""
        check_features(input_features, self.backbone_embedding_dim, type(self).__name__)
        dtype = self.future_tokens.weight.dtype
        batch = input_features.shape[0]
        ids = resolve_embodiment_ids(
            kwargs.get("embodiment_id"), batch, self.max_num_embodiments, input_features.device
        )
        mask = attention_mask.bool() if (self.mask_padding and attention_mask is not None) else None
        return input_features.to(dtype), mask, state_tokens(states, self.state_dim, dtype), ids

    def process_backbone(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """vlln + vl_self_attention: (B, S, D) -> (B, S, D)."""
        features = self.vlln(features)
        if self.vl_self_attention is not None:
            features = self.vl_self_attention(features, mask)
        return features

    def discretize(self, t: torch.Tensor) -> torch.Tensor:
        """Continuous time (B,) -> bucket index (B,) long, truncating like the reference."""
        return (t * self.num_timestep_buckets).long()

    def action_tokens(self, noisy_actions: torch.Tensor, t_buckets: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, action_dim), (B,), (B,) -> action tokens (B, T, input_embedding_dim)."""
        tokens = self.action_encoder(noisy_actions, t_buckets, ids)
        if self.add_pos_embed:
            tokens = tokens + self.position_embedding.weight[: tokens.shape[1]].unsqueeze(0)
        return tokens

    def velocity(
        self,
        noisy_actions: torch.Tensor,
        t_buckets: torch.Tensor,
        features: torch.Tensor,
        mask: torch.Tensor | None,
        state_features: torch.Tensor,
        ids: torch.Tensor,
    ) -> torch.Tensor:
        """One evaluation of the velocity field: x_t (B, T, action_dim) -> v (B, T, action_dim)."""
        action_tokens = self.action_tokens(noisy_actions, t_buckets, ids)
        future = self.future_tokens.weight.unsqueeze(0).expand(features.shape[0], -1, -1)
        tokens = torch.cat([state_features, future, action_tokens], dim=1)
        out = self.model(tokens, features, t_buckets, mask)
        return self.action_decoder(out, ids)[:, -noisy_actions.shape[1] :]

    def initial_noise(self, noise: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
        """x_0 (B, T, action_dim): the given noise (action_dim wide, or ori_action_dim wide and then
        zero-padded) or a fresh sample over all action_dim dims, as GR00T draws it. With
        zero_padded_action_dims the dims beyond ori_action_dim are zeroed."""
        if noise is None:
            noise = torch.randn(batch, self.traj_length, self.action_dim, device=like.device, dtype=like.dtype)
        else:
            check_chunk(noise, self.traj_length, "noise")
            noise = pad_action_dim(noise.to(device=like.device, dtype=like.dtype), self.action_dim,
                                   self.ori_action_dim, "noise").clone()
        if self.zero_padded_action_dims:
            noise[..., self.ori_action_dim :] = 0
        return noise

    def rtc_guidance(self, rtc: RTCGuidance | None, batch: int) -> RTCGuidance | None:
        """The caller's guidance at the model's width: the previous chunk zero-padded to action_dim
        and the padded dims (beyond ori_action_dim) left unguided; None stays None."""
        if rtc is None:
            return None
        if not isinstance(rtc, RTCGuidance):
            raise RTCError(f"rtc= must be a vla_core.models.rtc_guidance.RTCGuidance, got {type(rtc).__name__}.")
        chunk = rtc.prev_chunk_left_over
        width = chunk.shape[-1] if chunk.shape[-1] <= self.action_dim else self.action_dim
        rtc.check_fits(batch, self.traj_length, width, type(self).__name__)
        dtype = self.future_tokens.weight.dtype
        padded = F.pad(chunk.to(dtype), (0, self.action_dim - width))
        keep = torch.zeros(self.action_dim, dtype=dtype, device=chunk.device)
        keep[: min(width, self.out_action_dim)] = 1
        if rtc.action_mask is not None:
            mask = rtc.action_mask.to(keep)[: self.action_dim]
            keep[: mask.shape[0]] *= mask
        return replace(rtc, prev_chunk_left_over=padded, action_mask=keep)

    def sample_time(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """t = (noise_s - u) / noise_s with u ~ Beta(alpha, beta): (B,)."""
        beta = torch.distributions.Beta(self.noise_beta_alpha, self.noise_beta_beta)
        sample = beta.sample([batch]).to(device, dtype=dtype)
        return (self.noise_s - sample) / self.noise_s

    # ---- the action-head contract ----------------------------------------------------------
    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """input_features (B, S, D); states (B, state_dim); attention_mask (B, S); actions (B, T, A)
        with A = action_dim or ori_action_dim; action_masks (B, T) -> {"loss": masked velocity
        MSE, "pred_actions": one-step estimate x_t + (1 - t) v of the chunk (B, T, out_action_dim),
        "pred_velocity" (B, T, out_action_dim)}."""
        features, mask, states_in, ids = self.prepare_inputs(input_features, states, attention_mask, kwargs)
        check_chunk(actions, self.traj_length, "actions")
        actions = pad_action_dim(actions.to(features.dtype), self.action_dim, self.ori_action_dim, "actions")
        step_mask = action_masks[:, : self.traj_length].to(actions.dtype).unsqueeze(-1)  # (B, T, 1)
        # Padded steps are still tokens that valid steps attend to; zero them so whatever a
        # dataset put past the episode end cannot leak into the loss.
        actions = actions * step_mask
        batch = actions.shape[0]
        features = self.process_backbone(features, mask)
        state_features = self.state_encoder(states_in, ids)

        noise = self.initial_noise(kwargs.get("noise"), batch, actions)
        t = kwargs.get("flow_time")
        t = self.sample_time(batch, actions.device, actions.dtype) if t is None else t.to(actions)
        t3 = t[:, None, None]
        noisy = (1 - t3) * noise + t3 * actions
        target = actions - noise
        pred = self.velocity(noisy, self.discretize(t), features, mask, state_features, ids)

        width = self.out_action_dim
        pred, target = pred[..., :width], target[..., :width]
        squared = (pred - target) ** 2 * step_mask
        count = step_mask.sum() * width  # valid elements: the engine weighs micro-batches by it
        loss = squared.sum() / count.clamp(min=1.0)
        estimate = noisy[..., :width] + (1 - t3) * pred
        return {"loss": loss, "pred_actions": estimate, "pred_velocity": pred, "loss_weight": count.detach()}

    @torch.no_grad()
    def predict_action(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """(B, S, D), (B, state_dim), (B, S) [, noise=(B, T, A), embodiment_id=(B,), rtc=RTCGuidance] ->
        (B, T, out_action_dim), by Euler integration of the velocity from t=0 to t=1.

        With `rtc` (vla_core.models.rtc_guidance.RTCGuidance, its chunk (B, T, A) in
        out_action_dim or action_dim width) every step's velocity is corrected toward the
        previous chunk (real-time chunking; one backward pass through the DiT per step)."""
        features, mask, states_in, ids = self.prepare_inputs(input_features, states, attention_mask, kwargs)
        batch = features.shape[0]
        features = self.process_backbone(features, mask)
        state_features = self.state_encoder(states_in, ids)
        actions = self.initial_noise(kwargs.get("noise"), batch, features)
        rtc = self.rtc_guidance(kwargs.get("rtc"), batch)
        steps = self.num_inference_timesteps
        dt = 1.0 / steps
        for k in range(steps):
            bucket = int(k / float(steps) * self.num_timestep_buckets)
            t_buckets = torch.full((batch,), bucket, device=features.device, dtype=torch.long)
            if rtc is None:
                v = self.velocity(actions, t_buckets, features, mask, state_features, ids)
            else:
                tau = k / float(steps)

                def denoise(x: torch.Tensor, t_buckets: torch.Tensor = t_buckets, tau: float = tau) -> tuple:
                    v = self.velocity(x, t_buckets, features, mask, state_features, ids)
                    return x + (1 - tau) * v, v  # the one-step estimate of the actions (t = 1)

                v = guided_velocity(actions, tau, denoise, rtc, velocity_sign=1.0)
            actions = actions + dt * v
            if self.zero_padded_action_dims:
                actions[..., self.ori_action_dim :] = 0
        return actions[..., : self.out_action_dim]


def _check_sizes(args: dict[str, Any]) -> None:
    """Constructor checks, as ConfigErrors naming the parameter."""
    path = "vla_head"
    if args["input_embedding_dim"] % args["num_heads"]:
        raise ConfigError(
            f"input_embedding_dim={args['input_embedding_dim']} is not divisible by num_heads={args['num_heads']}; "
            "the DiT width is num_heads * head_dim.",
            f"{path}.num_heads",
        )
    if args["vl_self_attention_layers"] > 0 and args["backbone_embedding_dim"] % args["vl_self_attention_heads"]:
        raise ConfigError(
            f"backbone_embedding_dim={args['backbone_embedding_dim']} is not divisible by "
            f"vl_self_attention_heads={args['vl_self_attention_heads']}.",
            f"{path}.vl_self_attention_heads",
        )
    ori = args["ori_action_dim"]
    if ori is not None and not 0 < ori <= args["action_dim"]:
        raise ConfigError(
            f"ori_action_dim={ori} must be in [1, action_dim={args['action_dim']}].", f"{path}.ori_action_dim"
        )
    if args["zero_padded_action_dims"] and ori is None:
        raise ConfigError(
            "zero_padded_action_dims holds the dims beyond ori_action_dim at zero, but ori_action_dim is not set; "
            "set ori_action_dim to the robot's action width, or drop zero_padded_action_dims.",
            f"{path}.zero_padded_action_dims",
        )
    if args["add_pos_embed"] and args["traj_length"] > args["max_seq_len"]:
        raise ConfigError(
            f"traj_length={args['traj_length']} exceeds max_seq_len={args['max_seq_len']} (rows of the position "
            "embedding); raise max_seq_len.",
            f"{path}.max_seq_len",
        )
    for name in ("num_inference_timesteps", "max_num_embodiments", "traj_length", "num_timestep_buckets"):
        if args[name] < 1:
            raise ConfigError(f"{name} must be at least 1, got {args[name]}.", f"{path}.{name}")
