"""Contract checks for models: backbones, projectors and whole VLAs (re-exported by vla_core.testing).

Each builds random inputs of the documented shapes, runs the component, and asserts the
protocol's output shapes, finiteness, and that gradients reach its trainable parameters.
`check_vla` also saves and reloads a VLA built from a config.
"""

from __future__ import annotations

from typing import Any


def _assert_trains(module: Any, output: Any, what: str) -> None:
    output.float().pow(2).mean().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), f"the {what} does not reach any parameter"


def check_vlm_backbone(backbone: Any, image_size: tuple[int, int], vocab_ids: list[int], num_cameras: int = 1,
                       batch_size: int = 2) -> None:
    """The VLM-backbone contract: `hidden_size`; forward(images (B, N_cam, 3, H, W), lang_tokens (B, L),
    img_masks (B, N_cam), lang_masks (B, L)) -> BackboneOutput with features (B, S, hidden_size) finite and
    mask (B, S) bool; padding the instruction does not change the valid features of the other row;
    gradients reach the parameters. `vocab_ids` are valid instruction token ids of its tokenizer."""
    import torch

    assert isinstance(getattr(backbone, "hidden_size", None), int), "a VLM backbone declares hidden_size (int)"
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, num_cameras, 3, *image_size, generator=g)
    tokens = torch.tensor([vocab_ids] * batch_size)
    lang_masks = torch.ones_like(tokens, dtype=torch.bool)
    lang_masks[1:, -1] = False
    img_masks = torch.ones(batch_size, num_cameras, dtype=torch.bool)
    out = backbone(images, tokens, img_masks, lang_masks)
    features, mask = out[0], out[1]
    assert features.ndim == 3 and features.shape[0] == batch_size and features.shape[2] == backbone.hidden_size, (
        f"features must be (B, S, {backbone.hidden_size}), got {tuple(features.shape)}")
    assert mask.dtype == torch.bool and tuple(mask.shape) == tuple(features.shape[:2]), "mask must be (B, S) bool"
    assert bool(torch.isfinite(features).all()), "features are not finite"
    assert int(mask[1].sum()) < int(mask[0].sum()), "a padded instruction token is still marked valid"
    _assert_trains(backbone, features[mask], "VLM backbone's output")


def check_vision_backbone(backbone: Any, image_size: tuple[int, int], batch_size: int = 2) -> None:
    """The vision-backbone contract: `embed_dim`; (B, 3, H, W) -> (B, P, embed_dim) finite; trains."""
    import torch

    out = backbone(torch.randn(batch_size, 3, *image_size, generator=torch.Generator().manual_seed(0)))
    assert out.ndim == 3 and out.shape[0] == batch_size and out.shape[2] == backbone.embed_dim, (
        f"features must be (B, P, {backbone.embed_dim}), got {tuple(out.shape)}")
    assert bool(torch.isfinite(out).all()), "features are not finite"
    _assert_trains(backbone, out, "vision backbone's output")


def check_llm_backbone(backbone: Any, vocab_size: int, seq_len: int = 5, batch_size: int = 2) -> None:
    """The LLM-backbone contract: `hidden_size`; embed_tokens (B, L) -> (B, L, D); forward(inputs_embeds,
    attention_mask) -> BackboneOutput (B, L, D) finite, mask as given; trains."""
    import torch

    tokens = torch.randint(0, vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    embeds = backbone.embed_tokens(tokens)
    assert tuple(embeds.shape) == (batch_size, seq_len, backbone.hidden_size), "embed_tokens must give (B, L, D)"
    mask = torch.ones(batch_size, seq_len, dtype=torch.bool)
    mask[1:, -1] = False
    out = backbone(embeds, mask)
    assert tuple(out[0].shape) == (batch_size, seq_len, backbone.hidden_size), "features must be (B, L, D)"
    assert torch.equal(out[1].bool(), mask), "the mask must come back unchanged"
    assert bool(torch.isfinite(out[0]).all()), "features are not finite"
    _assert_trains(backbone, out[0], "LLM backbone's output")


def check_projector(projector: Any, batch_size: int = 2, seq_len: int = 3) -> None:
    """The projector contract: `in_dim`, `out_dim`; (..., in_dim) -> (..., out_dim); trains."""
    import torch

    x = torch.randn(batch_size, seq_len, projector.in_dim, generator=torch.Generator().manual_seed(0))
    out = projector(x)
    wanted = (batch_size, seq_len, projector.out_dim)
    assert tuple(out.shape) == wanted, f"a projector maps (..., in_dim) -> (..., out_dim): got {tuple(out.shape)}"
    _assert_trains(projector, out, "projector's output")


def check_vla(vla: Any, batch: dict[str, Any], atol: float = 1e-5) -> None:
    """The VLA contract, on one batch in the sample schema (e.g. `make_tiny_batch()` sized for it):

    * `forward(**batch)` -> {"loss": finite scalar, ...}, and the loss reaches the head and every other
      part that has trainable parameters (a part the loss skips would never train);
    * `predict_action(**observation)` -> (B, T, A) finite, with T and A those of `batch["actions"]`, the same
      for the same `noise=` (generative heads sample from it);
    * `fsdp_unit_types()` -> a set of nn.Module classes;
    * a VLA built from a config (`vla_core.build_vla`) saves and loads back (`save_pretrained`,
      `load_pretrained`) to a model that predicts the same actions.
    """
    import tempfile

    import torch
    from torch import nn

    from vla_core.models.pretrained import load_pretrained

    observation = {k: v for k, v in batch.items() if k not in ("actions", "action_masks")}
    batch_size, chunk, action_dim = batch["actions"].shape
    vla.train()
    vla.zero_grad()
    out = vla(**batch)
    loss = out["loss"]
    assert loss.ndim == 0 and bool(torch.isfinite(loss)), f"the VLA's loss must be a finite scalar, got {loss}"
    loss.backward()
    for name, part in vla.named_children():
        params = [p for p in part.parameters() if p.requires_grad]
        if params:
            assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params), (
                f"the loss does not reach the VLA's part '{name}', so training would never change it")

    vla.eval()
    noise = torch.randn(batch_size, chunk, action_dim, generator=torch.Generator().manual_seed(0))
    pred = vla.predict_action(**observation, noise=noise)
    assert tuple(pred.shape) == (batch_size, chunk, action_dim), (
        f"predict_action must give (B, T, A) = {(batch_size, chunk, action_dim)}, got {tuple(pred.shape)}")
    assert bool(torch.isfinite(pred).all()), "predicted actions are not finite"
    torch.testing.assert_close(vla.predict_action(**observation, noise=noise), pred, atol=atol, rtol=0,
                               msg="predict_action gives different actions for the same inputs and noise")

    units = vla.fsdp_unit_types()
    assert isinstance(units, set) and all(isinstance(u, type) and issubclass(u, nn.Module) for u in units), (
        f"fsdp_unit_types() must return a set of nn.Module classes, got {units!r}")

    if getattr(vla, "component_spec", None) is not None:  # built from a config: it can be saved
        with tempfile.TemporaryDirectory() as tmp:
            vla.save_pretrained(f"{tmp}/checkpoint")
            loaded = load_pretrained(f"{tmp}/checkpoint").eval()
            torch.testing.assert_close(loaded.predict_action(**observation, noise=noise), pred, atol=atol, rtol=0,
                                       msg="the saved and reloaded VLA predicts other actions")


def check_records_architecture(kind: str, spec: dict[str, Any], remove_sources: Any = None) -> tuple[Any, Any]:
    """The stand-alone checkpoint contract (`vla_core.protocols.ResolvesArchitecture`): build the
    component of group `kind` from `spec` (e.g. with a model directory), call `remove_sources()`
    (e.g. delete that directory), and rebuild it from its recorded `component_spec` alone.

    Asserts: the record is JSON, names no directory in the class's `architecture_paths`, and
    rebuilds the same state-dict keys and shapes; the rebuilt one then holds the first one's
    weights. Returns (built, rebuilt), both in eval mode, for the caller to compare outputs.
    """
    import json

    from vla_core.models.architecture import architecture_paths
    from vla_core.models.build import build_component

    built = build_component(kind, spec)
    recorded = built.component_spec
    json.dumps(recorded)  # config.json holds it
    for name in architecture_paths(type(built)):
        assert recorded.get(name) is None, (
            f"{type(built).__name__}'s recorded spec still names {name} = {recorded.get(name)!r}: "
            "resolved_parameters() must return the architecture read from it and set it to None")
    if remove_sources is not None:
        remove_sources()
    rebuilt = build_component(kind, recorded)
    shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    rebuilt_shapes = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    assert shapes == rebuilt_shapes, (
        f"{type(built).__name__} rebuilt from its recorded spec has another architecture: "
        f"{sorted(set(shapes.items()) ^ set(rebuilt_shapes.items()))[:6]}")
    rebuilt.load_state_dict(built.state_dict())
    return built.eval(), rebuilt.eval()
