"""FlowMatchingInferenceHead: FlowMatchingHead's weights, inference only, faster.

Same parameters and state dict as `FlowMatchingHead` (use it as `inference_model` in a run
config), same function; what changes is how `predict_action` computes it:

* once per call: vlln + vl_self_attention, the keys/values of the backbone features in
  every cross-attention block, the state token, the token buffer with the future tokens,
  the per-embodiment encoder/decoder weights, the time terms of every Euler step;
* once per weights: transformer linears packed for oneDNN on CPU (fused q/k/v, fused k/v,
  tanh-GELU fused into the feed-forward), the AdaLN modulations of the Euler time grid;
* per step: only what depends on the actions; the last DiT block and the output layers
  run on the action tokens only;
* optional `torch.compile` of the step (`compile: true`); on CUDA, the step is captured
  once as a CUDA graph and replayed (static buffers refilled per call).

The CUDA-graph path only runs on CUDA devices; it is not exercised by the CPU test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vla_core.errors import VLAError
from vla_heads_flow.attention import key_padding_mask
from vla_heads_flow.flow_matching_head import FlowMatchingHead
from vla_heads_flow.inference_kernels import HeadKernels, TimeTable, parameter_signature
from vla_heads_flow.inference_step import (
    CallInputs,
    clone_inputs,
    copy_inputs,
    denoise_step,
    structure_key,
    vl_block,
)


class _CapturedStep:
    """One denoising step captured as a CUDA graph, with the static buffers it reads."""

    def __init__(self, call: CallInputs, table: TimeTable, kernels: HeadKernels, step: Callable[..., None]) -> None:
        self.call = clone_inputs(call)
        self.block_mods = table.block_mods[0].clone()
        self.out_mods = table.out_mods[0].clone()
        self.tau = call.tau[0].clone()
        args = (self.block_mods, self.out_mods, self.tau, self.call, kernels)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up (and compilation, with compile: true) outside the capture
                step(*args)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            step(*args)

    def run(self, call: CallInputs, table: TimeTable) -> torch.Tensor:
        copy_inputs(self.call, call)
        for k in range(len(table.buckets)):
            self.block_mods.copy_(table.block_mods[k])
            self.out_mods.copy_(table.out_mods[k])
            self.tau.copy_(call.tau[k])
            self.graph.replay()
        return self.call.actions


class FlowMatchingInferenceHead(FlowMatchingHead):
    """FlowMatchingHead for inference: same weights and outputs, cached and packed so each
    Euler step only computes what depends on the current actions.

    Args:
        compile: compile the denoising step with torch.compile (the first call compiles; on
            CPU this needs a C++ compiler).
        prepack_weights: on CPU, pack the transformer weights for oneDNN once (a second copy
            of them in memory; much faster fp32 matmuls where MKL is slow).
        cuda_graph: on CUDA, capture one denoising step as a CUDA graph and replay it for
            every step.
    """

    supports_compile: bool = True
    supports_kv_cache: bool = True

    def __init__(
        self, compile: bool = False, prepack_weights: bool = True, cuda_graph: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.compile_step = compile
        self.prepack_weights = prepack_weights
        self.cuda_graph = cuda_graph
        self._kernels: HeadKernels | None = None
        self._compiled: Callable[..., None] | None = None
        self._graphs: dict[Any, _CapturedStep] = {}

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        raise VLAError(
            "FlowMatchingInferenceHead is inference-only: train with FlowMatchingHead (same parameters and "
            "weights) and use FlowMatchingInferenceHead in the run config's inference_model."
        )

    def kernels(self) -> HeadKernels:
        """The weight-derived cache, rebuilt when any parameter changed since it was built."""
        if self._kernels is None or self._kernels.signature != parameter_signature(self):
            self._kernels = HeadKernels.build(self, self.prepack_weights)
            self._graphs.clear()
        return self._kernels

    def _step_function(self) -> Callable[..., None]:
        if not self.compile_step:
            return denoise_step
        if self._compiled is None:
            self._compiled = torch.compile(denoise_step, dynamic=False)
        return self._compiled

    def prepare_call(
        self,
        kernels: HeadKernels,
        table: TimeTable,
        features: torch.Tensor,
        mask: torch.Tensor | None,
        states: torch.Tensor,
        ids: torch.Tensor,
        noise: torch.Tensor | None,
    ) -> CallInputs:
        """Everything the steps share, computed once: features (B, S, D) raw backbone features,
        mask (B, S) or None, states (B, 1, state_dim), ids (B,)."""
        batch = features.shape[0]
        attn_mask = key_padding_mask(mask)

        features = self.vlln(features)
        for block in kernels.vl_blocks:
            features = vl_block(block, features, attn_mask)
        cross_kv: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for block in kernels.dit_blocks:
            if block.self_attention:
                cross_kv.append(None)
                continue
            assert block.kv is not None
            key, value = block.kv(features).chunk(2, dim=-1)
            split = (batch, features.shape[1], block.heads, -1)
            cross_kv.append((key.reshape(split).transpose(1, 2).contiguous(),
                             value.reshape(split).transpose(1, 2).contiguous()))

        first = int(ids[0])
        uniform = first if bool((ids == first).all()) else None
        width = self.input_embedding_dim
        # Every chunk step shares the time, so the time half of W2 (and its bias) is one row per step.
        w2 = self.action_encoder.W2
        w2t, b2 = w2.W[ids, width:], w2.b[ids].unsqueeze(1)  # (B, w, w), (B, 1, w)
        tau = [torch.matmul(encoding.view(1, 1, width).expand(batch, 1, width), w2t) + b2 for encoding in table.tau]

        horizon = self.traj_length
        future = self.future_tokens.weight
        tokens = features.new_empty(batch, 1 + future.shape[0] + horizon, width)
        tokens[:, :1] = self.state_encoder(states, ids)
        tokens[:, 1 : 1 + future.shape[0]] = future
        pos = self.position_embedding.weight[:horizon] if self.add_pos_embed else future.new_zeros(horizon, width)
        keep = torch.ones(self.action_dim, device=features.device, dtype=features.dtype)
        if self.zero_padded_action_dims:
            keep[self.ori_action_dim :] = 0
        return CallInputs(
            actions=self.initial_noise(noise, batch, features),
            keep=keep, tokens=tokens, cross_kv=cross_kv, mask=attn_mask,
            embodiment=kernels.embodiment_kernels(self, ids, uniform), uniform_embodiment=uniform,
            tau=tau, pos=pos, dt=1.0 / len(table.buckets),
        )

    @torch.no_grad()
    def predict_action(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """(B, S, D), (B, state_dim), (B, S) [, noise=(B, T, A), embodiment_id=(B,), rtc=RTCGuidance] ->
        (B, T, out_action_dim); equal to FlowMatchingHead.predict_action for the same noise.

        With `rtc` (real-time chunking) it samples through FlowMatchingHead's path: the guidance
        needs a backward pass through the DiT at every step, which the cached, packed and
        in-place step here does not support."""
        if kwargs.get("rtc") is not None:
            return super().predict_action(input_features, states, attention_mask, **kwargs)
        features, mask, states_in, ids = self.prepare_inputs(input_features, states, attention_mask, kwargs)
        kernels = self.kernels()
        table = kernels.time_table(self, self.num_inference_timesteps)
        call = self.prepare_call(kernels, table, features, mask, states_in, ids, kwargs.get("noise"))
        step = self._step_function()
        if self.cuda_graph and features.device.type == "cuda":
            key = structure_key(call)
            if key not in self._graphs:
                self._graphs[key] = _CapturedStep(call, table, kernels, step)
            actions = self._graphs[key].run(call, table)
        else:
            for k in range(len(table.buckets)):
                step(table.block_mods[k], table.out_mods[k], call.tau[k], call, kernels)
            actions = call.actions
        return actions[..., : self.out_action_dim].clone()
