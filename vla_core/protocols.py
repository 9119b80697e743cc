"""The typed contracts every component meets.

A third-party component needs no base class: it only has to have the shape of one of
these protocols. Nothing heavy is imported here at run time (torch only for type
checkers), so plugins can import this module in their light top-level package.

Shape letters used throughout: B batch, N_cam cameras, C channels, H/W image size,
S backbone sequence length, D feature width, L language tokens, P patches per image,
T action chunk length (horizon), A action dim, T_obs frames of observation history.

Observation history (optional; vla_core.data.schema): a batch with `obs_masks` (B, T_obs)
has images (B, T_obs, N_cam, C, H, W), img_masks (B, T_obs, N_cam) and states (B, T_obs,
state_dim). A VLA that reads it declares `supports_history = True` and runs its backbone
per frame; the head then gets input_features (B, T_obs, S, D), attention_mask (B, T_obs, S),
states (B, T_obs, state_dim) and `obs_masks=` (B, T_obs) (False = a padded frame before the
episode start). A head that reads it declares `supports_history = True` (shown by `vla
info`; `vla config validate` requires history in the data exactly for such heads).

Stateful inference (optional): a head or VLA may keep state between `predict_action`
calls of one episode (a window of frames, a recurrent state). It then has `reset()`, which
starts a new episode; `BaseVLA.reset()` calls its parts', `Policy.reset()` the VLA's, and
`vla eval` (every episode) and the server (every session) call `Policy.reset()`. Online,
the policy feeds one frame at a time (no history axis) and the head keeps its window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn


class BackboneOutput(NamedTuple):
    """What a VLM (or LLM) backbone returns.

    Attributes:
        features: (B, S, D) float, the sequence the action head reads.
        mask: (B, S) bool, True where a position is valid.
        extra: anything the producer wants to pass on (a KV cache, per-layer states) or None.
    """

    features: torch.Tensor
    mask: torch.Tensor
    extra: Any = None


@runtime_checkable
class VLMBackbone(Protocol):
    """A vision-language model: images and instruction tokens in, one feature sequence out."""

    hidden_size: int

    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        img_masks: torch.Tensor,
        lang_masks: torch.Tensor,
    ) -> BackboneOutput:
        """images (B, N_cam, C, H, W) float; lang_tokens (B, L) long; img_masks (B, N_cam)
        bool; lang_masks (B, L) bool -> BackboneOutput with features (B, S, hidden_size)."""
        ...


@runtime_checkable
class VisionBackbone(Protocol):
    """An image encoder: (B, C, H, W) -> patch features (B, P, embed_dim)."""

    embed_dim: int

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W), already normalised by the processor -> (B, P, embed_dim)."""
        ...


@runtime_checkable
class LLMBackbone(Protocol):
    """A decoder that embeds tokens and runs over `inputs_embeds`."""

    hidden_size: int

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> (B, L, hidden_size)."""
        ...

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> BackboneOutput:
        """inputs_embeds (B, S, hidden_size); attention_mask (B, S) bool -> BackboneOutput."""
        ...


@runtime_checkable
class Projector(Protocol):
    """Maps features of width `in_dim` to width `out_dim`: (..., in_dim) -> (..., out_dim)."""

    in_dim: int
    out_dim: int

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ActionHead(Protocol):
    """Reads backbone features (and the robot state) and produces an action chunk.

    Extra batch entries (e.g. `embodiment_id` (B,) long) arrive as keyword arguments; a
    head ignores those it does not use.

    Optional: `supports_history = True` (class attribute) for a head that reads observation
    history (features (B, T_obs, S, D), see the module docstring), `reset()` for a head
    that keeps state between `predict_action` calls of one episode, and `supports_rtc = True`
    for a flow-matching head whose `predict_action` takes `rtc=` (a
    `vla_core.models.rtc_guidance.RTCGuidance`: sample the chunk by guided flow matching so
    that it agrees with the previous chunk, real-time chunking). A head without the flag may
    ignore `rtc=`; callers check the flag (`vla_core.rtc.require_rtc`) first.
    """

    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """input_features (B, S, D); states (B, state_dim); attention_mask (B, S) bool;
        actions (B, T, A) normalised targets; action_masks (B, T) bool (False = padding past
        the episode end) -> {"loss": scalar, "pred_actions": (B, T, A), ...}. A head whose loss
        is a masked mean should also return "loss_weight": the scalar count it divides by;
        the engine then averages over the valid elements of the whole global batch, exactly,
        across micro-batches and processes."""
        ...

    def predict_action(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Same inputs without targets -> (B, T, A) normalised actions. Generative heads
        take `noise=` (B, T, A) for reproducible sampling. A stateful head given one frame
        (input_features (B, S, D)) treats it as the next frame of the episode."""
        ...


@runtime_checkable
class VLA(Protocol):
    """A whole policy. Its arguments are the batch keys, so a batch dict passes as `**batch`.

    Optional: `supports_history = True` (batches with `obs_masks`, see the module docstring),
    `reset()` (start of an episode; `BaseVLA.reset()` resets every part that has one) and
    `supports_rtc` (`predict_action(..., rtc=RTCGuidance)`, see ActionHead; LlavaVLA reads its
    head's flag).
    """

    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """images (B, N_cam, C, H, W); lang_tokens/lang_masks (B, L); img_masks (B, N_cam);
        states (B, state_dim); actions (B, T, A); action_masks (B, T) -> {"loss", ...}. With
        history: images (B, T_obs, N_cam, C, H, W), img_masks (B, T_obs, N_cam), states (B,
        T_obs, state_dim) and `obs_masks=` (B, T_obs)."""
        ...

    def predict_action(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The same observation inputs -> (B, T, A) normalised actions; `noise=` (B, T, A)
        makes generative models reproducible."""
        ...

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """Module classes the engine shards as FSDP2 units (e.g. decoder layers)."""
        ...


@runtime_checkable
class ResolvesArchitecture(Protocol):
    """Optional, for any component that reads (part of) its architecture from a directory
    when built: a transformers model directory's config.json, a saved processor's image size.

    A checkpoint must rebuild the component without that directory (it may be gone, or on
    another machine). So the component names those constructor parameters in
    `architecture_paths` and returns from `resolved_parameters()` the constructor arguments
    that rebuild exactly the architecture it built, with each of those parameters None.
    `build_component` merges them into the component's `component_spec`, which the VLA saves
    in config.json; `load_pretrained` then builds from it alone. An architecture path that is
    still set in a saved spec (an older checkpoint) is used when the directory exists, and is
    otherwise an error naming the component and the path: never a default architecture.

    `TransformersVisionBackbone`, `TransformersLLMBackbone` and `TransformersVLMBackbone`
    implement it (the transformers config dict: `vla_core.models.architecture.
    transformers_config_dict`); a component whose architecture comes from its arguments
    alone (weights only from `pretrained_name_or_path`) needs neither.
    """

    #: Constructor parameters naming a directory (or a mapping with a `*path` key) the
    #: architecture is read from, e.g. ("pretrained_name_or_path",).
    architecture_paths: ClassVar[tuple[str, ...]]

    def resolved_parameters(self) -> dict[str, Any]:
        """Constructor arguments (JSON values) that rebuild this architecture with every
        `architecture_paths` parameter None, e.g. {"config": {...}, "pretrained_name_or_path": None}.

        Optional too: a staticmethod `records_architecture(spec) -> bool` saying that a saved
        spec that still names a directory holds the whole architecture anyway (a format that
        recorded it before clearing the path); the directory is then not needed."""
        ...


@runtime_checkable
class Processor(Protocol):
    """Turns a raw observation into model inputs, and model actions back into robot actions.

    A raw observation is a dict: camera images keyed by camera name (`images`), `task` (the
    instruction string) and `state` (state_dim,) float; a training sample also has `actions`
    (T, action_dim) and `action_is_pad` (T,). The trainer fits, saves and loads it; `predict`,
    `serve` and `eval` load it from the checkpoint (`from_pretrained`, a classmethod).
    """

    def fit(self, dataset: Any) -> Any:
        """Learn what the training dataset determines (normalisation statistics, vocabulary); returns self."""
        ...

    def __call__(self, observation: dict[str, Any]) -> dict[str, Any]:
        """One raw observation -> unbatched model inputs (images (N_cam, C, H, W), ...)."""
        ...

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Processed samples -> a batch (tensors stacked on a new dim 0)."""
        ...

    def unnormalize_actions(self, actions: torch.Tensor) -> Any:
        """(B, T, A) normalised model actions -> (B, T, action_dim) in robot units."""
        ...

    def save_pretrained(self, directory: str) -> Any:
        """Write whatever the processor needs into the checkpoint `directory`, under `processor/`
        (plus e.g. `dataset_statistics.json`)."""
        ...

    @classmethod
    def from_pretrained(cls, directory: str) -> Any:
        """Load what `save_pretrained` wrote into `directory`."""
        ...


@runtime_checkable
class Env(Protocol):
    """A simulator for closed-loop evaluation (group `vla.envs`); see docs/evaluation.md.

    `spec` (a `vla_core.envs.spec.EnvSpec`) describes its cameras, state and actions.
    Optional: `expert(task)` (a scripted rollout policy, for `vla data generate`),
    `expand_tasks(names)` (aliases, groups) and `can_skip_render = True` (`step(action,
    render=False)` may leave the images out).
    """

    spec: Any

    def tasks(self) -> list[str]:
        """Names of the tasks this env can reset into."""
        ...

    def instruction(self, task: str) -> str:
        """The language instruction of `task`."""
        ...

    def reset(self, task: str, seed: int) -> dict[str, Any]:
        """Start an episode of `task` on the layout chosen by `seed` -> raw observation."""
        ...

    def step(self, action: Any) -> tuple[dict[str, Any], bool, bool]:
        """Apply one (A,) action -> (raw observation, success at this step, done at the step cap)."""
        ...

    def close(self) -> None:
        """Free the simulator (GL contexts, processes)."""
        ...
