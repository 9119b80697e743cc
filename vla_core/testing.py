"""Test helpers for vla and for plugin authors (a pytest plugin, loaded automatically).

Fixtures:
    vla_plugin_manager   a fresh pluggy manager with vla's hookspecs that never autoloads;
                         register inline plugin classes on it.
    register_component   register(kind, name, cls) for the duration of one test.
    tiny_batch           make_tiny_batch(...) -> a random batch in the sample schema.
    tiny_vla_spec        tiny_vla_spec(head=...) -> a small LlavaVLA spec around your head.

Functions:
    assert_plugin_is_light(dist)   listing and importing the plugin's packages leaves torch unimported.
    check_action_head(head, ...)   the action-head contract: shapes, finite loss, gradients, masking;
                                   for a head that reads history (supports_history) also
    check_stateful_head(head, ...) windows with padded frames, and online one-frame-at-a-time
                                   prediction equal to the batched one over the same window.
    check_vlm_backbone, check_vision_backbone, check_llm_backbone, check_projector, check_vla
                                   the model contracts (vla_core/testing_checks.py); check_vla also
                                   saves and reloads a VLA built from a config.
    check_records_architecture(kind, spec, remove_sources)
                                   a component built from a model directory rebuilds from its
                                   recorded spec once the directory is gone (stand-alone checkpoints).
    check_dataset(dataset)         raw samples, and a VLAProcessor fits it (vla_core/testing_dataset.py).
    check_env(env)                 spec, reset/step, the step cap, the expert (vla_core/testing_env.py).

One check per component kind: heads, vlas, vlm/vision/llm backbones, projectors, datasets,
envs (processors: `vla_core.data.processor.VLAProcessor` is the reference; a processor is
exercised by `check_dataset` and by training).

This module is imported by pytest in every environment where vla-core is installed, so
it imports nothing heavy at module level.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vla_core.testing_checks import (
    check_llm_backbone,
    check_projector,
    check_records_architecture,
    check_vision_backbone,
    check_vla,
    check_vlm_backbone,
)
from vla_core.testing_dataset import check_dataset
from vla_core.testing_env import check_env

__all__ = ["assert_plugin_is_light", "check_action_head", "check_dataset", "check_env", "check_llm_backbone",
           "check_projector", "check_records_architecture", "check_stateful_head", "check_vision_backbone",
           "check_vla", "check_vlm_backbone",
           "make_tiny_batch", "tiny_vla_spec"]


def assert_plugin_is_light(dist: str) -> None:
    """Assert that listing components and importing the top-level packages of `dist`'s
    entry points (and its `vla.plugins` hook modules) does not import torch.

    Runs in a fresh subprocess so nothing already imported here hides a heavy import.
    """
    code = f"""
import json, sys
from importlib.metadata import distribution
import vla_core
vla_core.list_components()
dist = distribution({dist!r})
modules = sorted({{ep.value.split(":")[0] for ep in dist.entry_points if ep.group.startswith("vla.")}})
tops = sorted({{m.split(".")[0] for m in modules}})
hooks = [ep.value.split(":")[0] for ep in dist.entry_points if ep.group == "vla.plugins"]
import importlib
for name in tops + hooks:
    importlib.import_module(name)
heavy = [m for m in ("torch", "transformers", "numpy", "timm") if m in sys.modules]
print(json.dumps({{"imported": tops + hooks, "heavy": heavy}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"importing the packages of {dist} failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["heavy"], (
        f"importing {report['imported']} (the light entry points of {dist}) imported {report['heavy']}; "
        "move heavy imports into the component modules so `vla list-components` stays fast."
    )


def make_tiny_batch(
    batch_size: int = 2,
    num_cameras: int = 1,
    image_size: int = 32,
    seq_len: int = 6,
    vocab_size: int = 64,
    state_dim: int = 4,
    action_dim: int = 3,
    chunk_size: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """A random batch in the sample schema (vla_core.data): images (B, N_cam, 3, H, W),
    img_masks (B, N_cam), lang_tokens/lang_masks (B, L), states (B, S), actions (B, T, A),
    action_masks (B, T) with the last step of the second row padded, embodiment_id (B,)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lang_masks = torch.ones(batch_size, seq_len, dtype=torch.bool)
    lang_masks[1:, seq_len - 2 :] = False
    action_masks = torch.ones(batch_size, chunk_size, dtype=torch.bool)
    action_masks[1:, -1] = False
    return {
        "images": torch.randn(batch_size, num_cameras, 3, image_size, image_size, generator=g),
        "img_masks": torch.ones(batch_size, num_cameras, dtype=torch.bool),
        "lang_tokens": torch.randint(1, vocab_size, (batch_size, seq_len), generator=g),
        "lang_masks": lang_masks,
        "states": torch.randn(batch_size, state_dim, generator=g),
        "actions": torch.randn(batch_size, chunk_size, action_dim, generator=g),
        "action_masks": action_masks,
        "embodiment_id": torch.zeros(batch_size, dtype=torch.long),
    }


def check_action_head(
    head: Any,
    input_dim: int,
    state_dim: int,
    action_dim: int,
    chunk_size: int,
    seq_len: int = 5,
    batch_size: int = 2,
    window_size: int | None = None,
) -> None:
    """The action-head contract every head must meet (use it in your plugin's tests).

    Checks: `forward` returns a finite scalar loss and pred_actions (B, T, A); the loss
    back-propagates into the head's parameters; `predict_action` returns (B, T, A); a
    padded action step (action_masks False) does not change the loss; an optional
    `loss_weight` is a positive scalar that counts only valid steps. A head that reads
    history (`supports_history`) is also checked by `check_stateful_head` with `window_size`
    frames (default: the head's `window_size`, else 3); it must have `reset()`.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(batch_size, seq_len, input_dim, generator=g)
    mask = torch.ones(batch_size, seq_len, dtype=torch.bool)
    states = torch.randn(batch_size, state_dim, generator=g)
    actions = torch.randn(batch_size, chunk_size, action_dim, generator=g)
    action_masks = torch.ones(batch_size, chunk_size, dtype=torch.bool)
    action_masks[:, -1] = False

    torch.manual_seed(0)
    out = head(feats, states, mask, actions, action_masks)
    loss = out["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss), f"loss must be a finite scalar, got {loss}"
    assert tuple(out["pred_actions"].shape) == (batch_size, chunk_size, action_dim)
    loss.backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the loss does not reach the head's parameters"

    if "loss_weight" in out:  # the count a masked-mean loss divides by: scalar, and padding lowers it
        weight = out["loss_weight"]
        assert weight.ndim == 0 and float(weight) > 0, f"loss_weight must be a positive scalar, got {weight}"
        fewer = action_masks.clone()
        fewer[:, 0] = False
        torch.manual_seed(0)
        assert float(head(feats, states, mask, actions, fewer)["loss_weight"]) < float(weight), (
            "loss_weight does not count the valid (unpadded) action steps"
        )

    changed = actions.clone()
    changed[:, -1] += 100.0  # only padded steps differ
    torch.manual_seed(0)
    loss_changed = head(feats, states, mask, changed, action_masks)["loss"]
    assert torch.allclose(loss.detach(), loss_changed.detach(), atol=1e-5), "padded action steps change the loss"

    head.eval()
    pred = head.predict_action(feats, states, mask)
    assert tuple(pred.shape) == (batch_size, chunk_size, action_dim)

    if getattr(head, "supports_history", False):
        window = window_size or getattr(head, "window_size", None) or 3
        check_stateful_head(head, input_dim, state_dim, action_dim, chunk_size, window, seq_len, batch_size)


def check_stateful_head(
    head: Any,
    input_dim: int,
    state_dim: int,
    action_dim: int,
    chunk_size: int,
    window_size: int,
    seq_len: int = 5,
    batch_size: int = 2,
    atol: float = 1e-5,
) -> None:
    """The contract of a head that reads observation history and keeps state online.

    Checks, with windows of `window_size` frames (input_features (B, W, S, D), states (B, W,
    state_dim), attention_mask (B, W, S), `obs_masks` (B, W) with the first frames of row 0
    padded, as at an episode start):
      * `forward` gives a finite loss and (B, T, A) predictions, and the loss reaches the head;
      * padded frames do not matter: changing them changes neither the loss nor the prediction;
      * online, after `reset()`, feeding one frame at a time ((B, S, D), no history axis) gives
        at every step the actions `predict_action` computes from the window of the last W
        frames (left-padded while the episode is shorter), for W + 2 steps (the window slides);
      * `reset()` forgets: the first step of a second episode equals the first of the first.
    """
    import torch

    assert callable(getattr(head, "reset", None)), "a head that reads history must have reset() (a new episode)"
    g = torch.Generator().manual_seed(1)
    steps = window_size + 2
    frames = torch.randn(batch_size, steps, seq_len, input_dim, generator=g)
    frame_masks = torch.ones(batch_size, steps, seq_len, dtype=torch.bool)
    frame_masks[-1, :, seq_len - 1 :] = False  # padded tokens in the last row
    frame_states = torch.randn(batch_size, steps, state_dim, generator=g)
    actions = torch.randn(batch_size, chunk_size, action_dim, generator=g)
    action_masks = torch.ones(batch_size, chunk_size, dtype=torch.bool)

    def window(end: int) -> dict[str, torch.Tensor]:
        """The window ending at frame `end` (inclusive), left-padded with copies of frame 0."""
        index = torch.arange(end - window_size + 1, end + 1)
        real = (index >= 0).expand(batch_size, -1).clone()
        index = index.clamp(min=0)
        return {"input_features": frames[:, index], "states": frame_states[:, index],
                "attention_mask": frame_masks[:, index], "obs_masks": real}

    head.train()
    padded = window(window_size - 2)  # an episode two frames shorter than the window
    torch.manual_seed(0)
    out = head(padded["input_features"], padded["states"], padded["attention_mask"], actions, action_masks,
               obs_masks=padded["obs_masks"])
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"]), f"loss must be a finite scalar, got {out['loss']}"
    assert tuple(out["pred_actions"].shape) == (batch_size, chunk_size, action_dim)
    head.zero_grad()
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters()), (
        "the loss over a window does not reach the head's parameters"
    )

    head.eval()
    changed = dict(padded, input_features=padded["input_features"].clone(), states=padded["states"].clone())
    pad = ~padded["obs_masks"]
    changed["input_features"][pad] += 5.0  # only frames before the episode start differ
    changed["states"][pad] -= 3.0
    with torch.no_grad():
        same = [head(**w, actions=actions, action_masks=action_masks)["loss"] for w in (padded, changed)]
    torch.testing.assert_close(same[0], same[1], atol=atol, rtol=0, msg="padded frames change the loss")
    torch.testing.assert_close(head.predict_action(**padded), head.predict_action(**changed), atol=atol, rtol=0,
                               msg="padded frames change the prediction")

    for episode in range(2):
        head.reset()
        for t in range(steps):
            online = head.predict_action(frames[:, t], frame_states[:, t], frame_masks[:, t])
            batched = head.predict_action(**window(t))
            assert tuple(online.shape) == (batch_size, chunk_size, action_dim)
            torch.testing.assert_close(
                online, batched, atol=atol, rtol=0,
                msg=f"episode {episode}, step {t}: one frame at a time differs from the window of the frames so far",
            )


def tiny_vla_spec(head: dict[str, Any] | None = None, feature_dim: int = 48) -> dict[str, Any]:
    """A tiny LlavaVLA spec from core components (SigLIP -> MLP projector -> Qwen2 -> head),
    for testing a head inside a whole VLA: images 32x32, vocab 64, features `feature_dim`
    wide; the default head is an MLPActionHead with state_dim 4, action_dim 3, chunk 4.
    Pair it with `make_tiny_batch()`."""
    return {
        "type": "LlavaVLA",
        "vision_backbone": {
            "type": "TransformersVisionBackbone",
            "model_type": "siglip_vision_model",
            "config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        },
        "projector": {"type": "MLPProjector", "in_dim": 32, "out_dim": feature_dim},
        "llm_backbone": {
            "type": "TransformersLLMBackbone",
            "model_type": "qwen2",
            "config": {"vocab_size": 64, "hidden_size": feature_dim, "intermediate_size": 2 * feature_dim,
                       "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2},
        },
        "vla_head": head
        or {"type": "MLPActionHead", "input_dim": feature_dim, "action_dim": 3, "chunk_size": 4, "state_dim": 4,
            "hidden_dim": 32},
    }


@pytest.fixture
def vla_plugin_manager() -> Iterator[Any]:
    """A pluggy manager with vla's hookspecs and no autoloaded plugins."""
    from vla_core.plugin_manager import new_plugin_manager

    manager = new_plugin_manager()
    registered: list[Any] = []
    original_register = manager.register

    def register(plugin: Any, name: str | None = None) -> Any:
        registered.append(plugin)
        return original_register(plugin, name=name)

    manager.register = register  # type: ignore[method-assign]
    try:
        yield manager
    finally:
        for plugin in registered:
            if manager.is_registered(plugin):
                manager.unregister(plugin)


@pytest.fixture
def register_component() -> Iterator[Callable[[str, str, Any], None]]:
    """register(kind, name, cls): a component visible to configs during this test only."""
    from vla_core import registry

    added: list[tuple[str, str]] = []

    def register(kind: str, name: str, target: Any) -> None:
        registry.register(kind, name, target)
        added.append((kind, name))

    try:
        yield register
    finally:
        for kind, name in added:
            registry.unregister(kind, name)


@pytest.fixture
def tiny_batch() -> Callable[..., dict[str, Any]]:
    """make_tiny_batch: call it with the sizes your model needs."""
    return make_tiny_batch


@pytest.fixture(name="tiny_vla_spec")
def tiny_vla_spec_fixture() -> Callable[..., dict[str, Any]]:
    """tiny_vla_spec(head=...): a small LlavaVLA spec around a head."""
    return tiny_vla_spec
