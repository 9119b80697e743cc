"""What pi0 and pi0.5 share: a PaliGemma prefix, a Gemma expert suffix, flow matching.

Subclasses say how the prefix and the suffix are embedded and how time enters; this
class owns the training loss and the sampler, with the fast path for sampling:

* the prefix keys/values are computed once into a static cache (no per-step concat/crop);
* context tokens that do not depend on the noisy actions (pi0's state token) are run
  once and appended to the cache;
* everything that depends only on the step's time (sinusoid, time MLPs) is computed for
  all steps before the loop, and RoPE tables and masks once per call;
* on CPU, every large matrix product (SigLIP, projector, Gemma VLM, expert, action/time
  MLPs) runs through oneDNN with weights packed once (`prepack_weights`).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import replace
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.config import LLMBackboneSpec, ProjectorSpec
from vla_core.errors import ConfigError, DataError
from vla_core.models import BaseVLA, build_component
from vla_core.models.packed_linear import can_pack, packed_linears
from vla_core.models.rtc_guidance import RTCGuidance, guided_velocity
from vla_core.rtc import RTCError
from vla_paligemma.attention import Rotary, additive_mask, key_padding_mask
from vla_paligemma.flow_matching import denoising_times, masked_mse, sample_time, sinusoidal_time_embedding
from vla_paligemma.fused_weights import FusedGemmaWeights, FusedLayer
from vla_paligemma.joint_attention import StaticKVCache, expert_block, joint_pass, prefix_cache


class SuffixInputs(NamedTuple):
    """The expert's input for one velocity evaluation.

    Attributes:
        embeds: (B, S, De) suffix tokens (pi0: state + actions; pi0.5: actions).
        blocks: (S,) long attention blocks (>= 1; the prefix is block 0).
        cond: (B, De) adaRMS conditioning, or None.
    """

    embeds: torch.Tensor
    blocks: torch.Tensor
    cond: torch.Tensor | None


class FlowMatchingVLA(BaseVLA, metaclass=ABCMeta):
    """Base of PI0FlowMatching and PI05FlowMatching (not a component itself)."""

    supports_kv_cache = True
    supports_rtc = True  # predict_action(..., rtc=RTCGuidance): real-time chunking

    def __init__(
        self,
        llm_expert: LLMBackboneSpec | None = None,
        action_in_proj: ProjectorSpec | None = None,
        action_out_proj: ProjectorSpec | None = None,
        proj_width: int = 1024,
        n_action_steps: int = 50,
        max_state_dim: int = 32,
        max_action_dim: int = 32,
        num_inference_steps: int = 10,
        time_sampling_beta_alpha: float = 1.5,
        time_sampling_beta_beta: float = 1.0,
        time_sampling_scale: float = 0.999,
        time_sampling_offset: float = 0.001,
        min_period: float = 4e-3,
        max_period: float = 4.0,
        use_prefix_cache: bool = True,
        fuse_expert_weights: bool = True,
        prepack_weights: bool = True,
        time_embedding_dtype: Literal["float64", "float32"] = "float64",
        step_schedule: Literal["accumulated", "exact"] = "accumulated",
        **kwargs: Any,
    ) -> None:
        """
        Args:
            llm_expert: the action expert (a GemmaLLMBackbone spec; Gemma 300M when omitted); its layers
                pair with the VLM's.
            action_in_proj: noisy actions (max_action_dim) -> proj_width; a LinearProjector when omitted.
            action_out_proj: expert output (proj_width) -> velocity (max_action_dim); a LinearProjector when omitted.
            proj_width: width of the action expert (its hidden_size).
            n_action_steps: actions per predicted chunk (T).
            max_state_dim: states are zero-padded to this width.
            max_action_dim: actions are zero-padded to this width.
            num_inference_steps: Euler steps from noise (t = 1) to actions (t = 0) in predict_action.
            time_sampling_beta_alpha: alpha of the Beta distribution of training times.
            time_sampling_beta_beta: beta of the Beta distribution of training times.
            time_sampling_scale: training time = Beta sample * scale + offset.
            time_sampling_offset: training time = Beta sample * scale + offset.
            min_period: shortest period of the sinusoidal time embedding.
            max_period: longest period of the sinusoidal time embedding.
            use_prefix_cache: predict_action computes the prefix keys/values once; False recomputes the
                prefix at every step.
            fuse_expert_weights: the cached sampler reads the expert through concatenated q|k|v and
                gate|up weights (fewer products per step; one extra copy of those weights in memory).
            prepack_weights: on CPU, predict_action runs every large linear layer (SigLIP, projector, Gemma
                VLM with fused q|k|v and gate|up, expert, action/time MLPs) through oneDNN with its weight
                packed once and cached (2-3x faster products in fp32 than torch's default here); costs a
                second copy of those weights in memory. No effect on CUDA or in training.
            time_embedding_dtype: precision of the sinusoidal time embedding's periods, angles and sin/cos
                (cast to float32 after): "float64" as openpi; "float32" as transformers' PI0 (a deviation from
                openpi, for parity with transformers).
            step_schedule: the Euler times: "accumulated" as openpi (t = 1, then t += dt in float32 while
                t >= -dt / 2); "exact" = the decimals 1 - k / num_steps as transformers' PI0 (a deviation from
                openpi, for parity with transformers).
        """
        super().__init__(**kwargs)
        self._reject_unused_parts()
        if self.vlm_backbone is None:
            raise ConfigError("needs a vlm_backbone (e.g. {type: PaliGemma, ...}).", "model.vlm_backbone")
        self.llm_expert = build_component(
            "llm_backbones", llm_expert or {"type": "GemmaLLMBackbone", **self._expert_defaults(proj_width)},
            "model.llm_expert",
        )
        self.proj_width = proj_width
        self.n_action_steps = n_action_steps
        self.max_state_dim = max_state_dim
        self.max_action_dim = max_action_dim
        self.num_inference_steps = num_inference_steps
        self.time_sampling = (
            time_sampling_beta_alpha, time_sampling_beta_beta, time_sampling_scale, time_sampling_offset
        )
        self.min_period, self.max_period = min_period, max_period
        self.use_prefix_cache = use_prefix_cache
        self.fuse_expert_weights = fuse_expert_weights
        self.prepack_weights = prepack_weights
        if time_embedding_dtype not in ("float64", "float32"):
            raise ConfigError(f"is {time_embedding_dtype!r}; use 'float64' or 'float32'.", "model.time_embedding_dtype")
        if step_schedule not in ("accumulated", "exact"):
            raise ConfigError(f"is {step_schedule!r}; use 'accumulated' or 'exact'.", "model.step_schedule")
        self.time_embedding_dtype = getattr(torch, time_embedding_dtype)
        self.step_schedule = step_schedule
        self.action_in_proj = self._projector(action_in_proj, max_action_dim, proj_width, "action_in_proj")
        self.action_out_proj = self._projector(action_out_proj, proj_width, max_action_dim, "action_out_proj")
        self._check_geometry()
        # Not modules: no parameters, not saved.
        self._fused_expert = FusedGemmaWeights()
        self._fused_vlm = FusedGemmaWeights()

    # ---- construction ------------------------------------------------------------
    def _expert_defaults(self, proj_width: int) -> dict[str, Any]:
        """Extra arguments of the default expert (pi0.5 adds its adaRMS width)."""
        return {"hidden_size": proj_width}

    def _reject_unused_parts(self) -> None:
        for name in ("vision_backbone", "llm_backbone", "projector", "vla_head"):
            if getattr(self, name) is not None:
                raise ConfigError(
                    f"{type(self).__name__} does not use {name}: its parts are vlm_backbone (PaliGemma) and "
                    "llm_expert (GemmaLLMBackbone). Remove it.",
                    f"model.{name}",
                )

    def _projector(self, spec: dict[str, Any] | None, in_dim: int, out_dim: int, name: str) -> nn.Module:
        """Build a projector (a LinearProjector by default) and check its widths."""
        default = {"type": "LinearProjector", "in_dim": in_dim, "out_dim": out_dim}
        projector = build_component("projectors", spec or default, f"model.{name}")
        for attr, want in (("in_dim", in_dim), ("out_dim", out_dim)):
            got = getattr(projector, attr, want)
            if got != want:
                raise ConfigError(f"is {got}, but it must be {want} here; set it to {want}.", f"model.{name}.{attr}")
        return projector

    def _check_geometry(self) -> None:
        """The joint attention needs the VLM and the expert to agree on layers and heads."""
        vlm_text = self.vlm_backbone.config.text_config
        expert = self.llm_expert.config
        if self.llm_expert.hidden_size != self.proj_width:
            raise ConfigError(
                f"is {self.proj_width}, but llm_expert.hidden_size is {self.llm_expert.hidden_size}; make them equal.",
                "model.proj_width",
            )
        for field in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim"):
            ours, theirs = getattr(expert, field), getattr(vlm_text, field)
            if ours != theirs:
                raise ConfigError(
                    f"is {ours}, but the VLM's language model has {theirs}: pi0 attends over both models' keys "
                    f"layer by layer, so set llm_expert.{field}: {theirs}.",
                    f"model.llm_expert.{field}",
                )

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the joint layers recompute their activations in backward: on when the
        engine switches on transformers' checkpointing of the VLM's language model."""
        return bool(getattr(self.vlm_backbone.layers[0], "gradient_checkpointing", False))

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """Only the SigLIP encoder layers: the joint attention calls into the Gemma layers'
        projections (not their forward), so those are sharded with the model root."""
        return {type(self.vlm_backbone.vision_tower.encoder.layers[0])}

    # ---- what pi0 and pi0.5 define -------------------------------------------------
    @abstractmethod
    def embed_prefix(
        self, images: torch.Tensor, img_masks: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor,
        states: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Observation -> prefix embeddings (B, P, D) and pad mask (B, P) bool."""

    @abstractmethod
    def embed_suffix(self, states: torch.Tensor, noisy_actions: torch.Tensor, time: torch.Tensor) -> SuffixInputs:
        """states (B, max_state_dim); noisy_actions (B, T, max_action_dim); time (B,) -> the expert's input."""

    @abstractmethod
    def context_tokens(self, states: torch.Tensor) -> torch.Tensor | None:
        """Suffix tokens that do not depend on the noisy actions, (B, C, De), or None."""

    @abstractmethod
    def step_conditioning(self, time_embeddings: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Sinusoidal embeddings of every step's time (num_steps, B, De) -> (per-step additive
        term of the action tokens or None, per-step adaRMS conditioning or None), each (num_steps, B, De)."""

    @abstractmethod
    def action_tokens(self, noisy_actions: torch.Tensor, time_term: torch.Tensor | None) -> torch.Tensor:
        """noisy_actions (B, T, max_action_dim) and this step's additive time term -> (B, T, De)."""

    # ---- inputs ----------------------------------------------------------------------
    def time_embedding(self, time: torch.Tensor) -> torch.Tensor:
        """time (B,) -> (B, proj_width) sinusoidal features."""
        return sinusoidal_time_embedding(
            time, self.proj_width, self.min_period, self.max_period, self.time_embedding_dtype
        )

    def _pad_last(self, x: torch.Tensor, width: int, name: str) -> torch.Tensor:
        if x.shape[-1] > width:
            raise DataError(
                f"{name} has {x.shape[-1]} dims but this model takes at most {width} (max_{name.rstrip('s')}_dim); "
                "raise it in the config or check the embodiment spec."
            )
        return F.pad(x, (0, width - x.shape[-1])) if x.shape[-1] < width else x

    def _check_chunk(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x = self._pad_last(x, self.max_action_dim, "actions") if name == "actions" else x
        expected = (self.n_action_steps, self.max_action_dim)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise DataError(
                f"{name} must be (B, {expected[0]}, {expected[1]}) = (batch, n_action_steps, max_action_dim), "
                f"got {tuple(x.shape)}; set n_action_steps to the dataset's chunk length."
            )
        return x

    # ---- velocity --------------------------------------------------------------------
    def velocity(
        self, prefix: torch.Tensor, prefix_mask: torch.Tensor, states: torch.Tensor, noisy_actions: torch.Tensor,
        time: torch.Tensor,
    ) -> torch.Tensor:
        """One velocity evaluation through the joint pass -> (B, T, max_action_dim)."""
        suffix = self.embed_suffix(states, noisy_actions, time)
        hidden = joint_pass(self.vlm_backbone, self.llm_expert, prefix, prefix_mask, suffix.embeds, suffix.blocks,
                            suffix.cond, checkpoint_layers=self.training and self.gradient_checkpointing)
        hidden = self.llm_expert.final_norm(hidden[:, -self.n_action_steps:], suffix.cond)
        return self.action_out_proj(hidden)

    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """Flow-matching loss on a batch (see vla_core.protocols.VLA for the shapes).

        noise (B, T, max_action_dim) and timestep (B,) fix the otherwise random noise and
        Beta-sampled time. -> {"loss": masked MSE of the velocity, "velocity": (B, T, A),
        "pred_actions": x_t - t * velocity, the one-step estimate of the actions}.
        """
        states = self._pad_last(states, self.max_state_dim, "states")
        actions = self._check_chunk(actions, "actions")
        batch = actions.shape[0]
        if noise is None:
            noise = torch.randn_like(actions)
        noise = self._check_chunk(noise, "noise")
        if timestep is None:
            timestep = sample_time(batch, *self.time_sampling, device=actions.device)
        t = timestep.float()[:, None, None]
        noisy = (t * noise + (1 - t) * actions).to(actions.dtype)
        prefix, prefix_mask = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, states)
        velocity = self.velocity(prefix, prefix_mask, states, noisy, timestep)
        loss = masked_mse(velocity, noise - actions, action_masks)
        return {"loss": loss, "velocity": velocity, "pred_actions": noisy - t * velocity}

    # ---- sampling --------------------------------------------------------------------
    @torch.no_grad()
    def predict_action(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        noise: torch.Tensor | None = None,
        num_steps: int | None = None,
        use_prefix_cache: bool | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Euler integration of the learned velocity from noise (t = 1) to actions (t = 0).

        noise (B, T, max_action_dim) makes it reproducible; num_steps defaults to
        num_inference_steps; use_prefix_cache to the config's -> (B, T, max_action_dim).
        `rtc=` (vla_core.models.rtc_guidance.RTCGuidance) samples by real-time chunking: every
        step's velocity is corrected toward the previous chunk (pi0's time runs 1 -> 0, so the
        guidance sees tau = 1 - t); one backward pass through the expert per step.
        With prepack_weights (on CPU), the linear layers run through packed oneDNN kernels:
        the same numbers to float rounding.
        """
        rtc = self.rtc_guidance(kwargs.get("rtc"), states.shape[0])
        with packed_linears(self, enabled=self.prepack_weights):
            return self._sample(images, lang_tokens, lang_masks, img_masks, states, noise, num_steps, use_prefix_cache,
                                rtc)

    def rtc_guidance(self, rtc: RTCGuidance | None, batch: int) -> RTCGuidance | None:
        """The caller's guidance at the model's width: the previous chunk zero-padded to
        max_action_dim, the padded dims left unguided; None stays None."""
        if rtc is None:
            return None
        if not isinstance(rtc, RTCGuidance):
            raise RTCError(f"rtc= must be a vla_core.models.rtc_guidance.RTCGuidance, got {type(rtc).__name__}.")
        chunk = rtc.prev_chunk_left_over
        width = min(chunk.shape[-1], self.max_action_dim)
        rtc.check_fits(batch, self.n_action_steps, width, type(self).__name__)
        keep = torch.zeros(self.max_action_dim, device=chunk.device)
        keep[:width] = 1 if rtc.action_mask is None else rtc.action_mask.to(keep)[:width]
        padded = F.pad(chunk.float(), (0, self.max_action_dim - width))
        return replace(rtc, prev_chunk_left_over=padded, action_mask=keep)

    def _sample(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        noise: torch.Tensor | None,
        num_steps: int | None,
        use_prefix_cache: bool | None,
        rtc: RTCGuidance | None = None,
    ) -> torch.Tensor:
        """predict_action's body (see there)."""
        states = self._pad_last(states, self.max_state_dim, "states")
        batch = states.shape[0]
        num_steps = num_steps or self.num_inference_steps
        dtype = self.action_in_proj.weight.dtype
        if noise is None:
            noise = torch.randn(batch, self.n_action_steps, self.max_action_dim, device=states.device, dtype=dtype)
        x = self._check_chunk(noise, "noise")
        dt = -1.0 / num_steps  # applied to float32 x as float32(dt), openpi's `dt` tensor
        times = denoising_times(num_steps, self.step_schedule)
        prefix, prefix_mask = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, states)
        cached = self.use_prefix_cache if use_prefix_cache is None else use_prefix_cache
        if not cached:
            for time in times:
                t = torch.full((batch,), time, dtype=torch.float32, device=x.device)
                if rtc is None:
                    x = x + dt * self.velocity(prefix, prefix_mask, states, x, t)
                    continue

                def denoise(x_in: torch.Tensor, t: torch.Tensor = t, time: float = time) -> tuple:
                    v = self.velocity(prefix, prefix_mask, states, x_in, t)
                    return x_in - time * v, v  # pi0's one-step estimate of the actions (t = 0)

                x = x + dt * guided_velocity(x, 1.0 - time, denoise, rtc, velocity_sign=-1.0)
            return x
        step_times = torch.tensor(times, dtype=torch.float32, device=x.device).repeat_interleave(batch)
        time_emb = self.time_embedding(step_times).reshape(len(times), batch, -1)
        time_terms, conds = self.step_conditioning(time_emb)
        fused = self.fused_expert_layers()
        cache, rotary, mask = self._prepare_cache(prefix, prefix_mask, states)
        for step in range(len(times)):
            cond = None if conds is None else conds[step]
            time_term = None if time_terms is None else time_terms[step]
            if rtc is None:
                tokens = self.action_tokens(x, time_term)
                hidden = expert_block(self.llm_expert, cache, tokens, rotary, mask, cond, fused)
                x = x + dt * self.action_out_proj(self.llm_expert.final_norm(hidden, cond))
                continue

            def denoise(x_in: torch.Tensor, cond: Any = cond, time_term: Any = time_term, step: int = step) -> tuple:
                # Unfused weights: the fused/packed copies are inference-only (no backward).
                hidden = expert_block(self.llm_expert, cache, self.action_tokens(x_in, time_term), rotary, mask, cond)
                v = self.action_out_proj(self.llm_expert.final_norm(hidden, cond))
                return x_in - times[step] * v, v  # pi0's one-step estimate of the actions (t = 0)

            x = x + dt * guided_velocity(x, 1.0 - times[step], denoise, rtc, velocity_sign=-1.0)
            # The step wrote its (graph-carrying) keys/values into the cache: cut them off the graph
            # so the next step's backward stays within that step.
            cache.keys = [k.detach() for k in cache.keys]
            cache.values = [v.detach() for v in cache.values]
        return x

    def fused_expert_layers(self) -> list[FusedLayer] | None:
        """The expert's fused (and, with prepack_weights, packed) weights for sampling, or None."""
        if not self.fuse_expert_weights:
            return None
        return self._fused_expert.get(self.llm_expert, pack=self.prepack_weights)

    def fused_vlm_layers(self) -> list[FusedLayer] | None:
        """The VLM layers' fused and packed weights for the prefix pass, or None. Only when
        their weights are packed (CPU, prepack_weights): the packed copy is then the one
        extra copy, where fusing alone would add a full unpacked copy of the VLM's weights."""
        q_weight = self.vlm_backbone.layers[0].self_attn.q_proj.weight
        if not (self.prepack_weights and can_pack(q_weight, 0)):
            return None
        return self._fused_vlm.get(self.vlm_backbone, pack=True)

    def _prepare_cache(
        self, prefix: torch.Tensor, prefix_mask: torch.Tensor, states: torch.Tensor
    ) -> tuple[StaticKVCache, Rotary, torch.Tensor]:
        """Prefix (and context tokens) into the cache; RoPE tables and mask of the action block."""
        context = self.context_tokens(states)
        context_len = 0 if context is None else context.shape[1]
        capacity = prefix.shape[1] + context_len + self.n_action_steps
        cache = prefix_cache(self.vlm_backbone, prefix, prefix_mask, capacity, self.fused_vlm_layers())
        if context is not None:
            positions = cache.next_position[:, None] + torch.arange(context_len, device=prefix.device)
            end = cache.length + context_len
            mask = additive_mask(key_padding_mask(cache.key_mask[:, :end]), context.dtype)
            expert_block(self.llm_expert, cache, context, self.llm_expert.rotary(positions, context.dtype), mask)
            cache.commit(context_len)
        positions = cache.next_position[:, None] + torch.arange(self.n_action_steps, device=prefix.device)
        rotary = self.llm_expert.rotary(positions, prefix.dtype)
        return cache, rotary, additive_mask(key_padding_mask(cache.key_mask), prefix.dtype)
