"""EagleBackbone end to end: the whole forward against a reference Eagle pipeline written
here (transformers' SigLIP and Qwen3, Eagle's connector and placeholder scatter), the two
image-token layouts, masking, freezing, input errors, and inference through packed oneDNN
weights (prepack_weights; the packing threshold lowered so that the toy layers are packed)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, SiglipVisionConfig, SiglipVisionModel

from vla_core.errors import ConfigError, DataError
from vla_core.models import packed_linear
from vla_core.models.packed_linear import PackedLinear

IMG = 127  # the tiny tokenizer's image placeholder id (conftest.IMAGE_TOKEN_ID)
TOKENS_PER_IMAGE = 16


class ReferenceEagle:
    """Isaac-GR00T's Eagle2_5_VL forward + EagleBackbone.forward_eagle, with the weights of `backbone`."""

    def __init__(self, backbone, tiny_kwargs) -> None:
        kwargs = tiny_kwargs()
        self.siglip = SiglipVisionModel(SiglipVisionConfig(**kwargs["vision_config"])).eval()
        self.siglip.load_state_dict(backbone.eagle_model.vision_model.vision_model.state_dict())
        torch.manual_seed(11)
        lm = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen3", **kwargs["text_config"])).eval()
        while len(lm.model.layers) > backbone.select_layer:
            lm.model.layers.pop(-1)
        backbone.eagle_model.language_model.load_state_dict(lm.state_dict())
        self.lm = lm
        self.mlp1 = dict(backbone.eagle_model.mlp1.named_parameters())
        linear = backbone.eagle_linear
        self.linear = (linear.weight, linear.bias) if isinstance(linear, torch.nn.Linear) else None

    @torch.no_grad()
    def __call__(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """pixel_values (N_images, C, H, W) of all rows in order; input_ids with placeholders."""
        vit = self.siglip(pixel_values=pixel_values).last_hidden_state
        vit = F.linear(vit, self.mlp1["0.weight"], self.mlp1["0.bias"])
        embeds = self.lm.get_input_embeddings()(input_ids)
        b, n, c = embeds.shape
        embeds = embeds.reshape(b * n, c)
        selected = input_ids.reshape(b * n) == IMG
        embeds[selected] = embeds[selected] * 0.0 + vit.reshape(-1, c)
        hidden = self.lm.model(inputs_embeds=embeds.reshape(b, n, c), attention_mask=attention_mask.long())
        features = hidden.last_hidden_state
        return F.linear(features, *self.linear) if self.linear else features


def prompt(n_images: int, text: list[int], pad_left: int = 0) -> list[int]:
    """<pad>* <img> IMG*16 </img> per image, then the instruction (ids stand in for Eagle's template)."""
    ids = [0] * pad_left
    for _ in range(n_images):
        ids += [5, *[IMG] * TOKENS_PER_IMAGE, 6]
    return ids + text


def batch_with_placeholders():
    rows = [prompt(2, [10, 11, 12, 13]), prompt(1, [20, 21], pad_left=20)]
    tokens = torch.tensor(rows)
    lang_masks = tokens != 0
    img_masks = torch.tensor([[True, True], [True, False]])
    images = torch.randn(2, 2, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    return images, tokens, img_masks, lang_masks


def test_forward_matches_reference_eagle_pipeline(make_backbone, tiny_kwargs) -> None:
    backbone = make_backbone(project_to_dim=40)
    reference = ReferenceEagle(backbone, tiny_kwargs)
    images, tokens, img_masks, lang_masks = batch_with_placeholders()
    with torch.no_grad():
        out = backbone(images, tokens, img_masks, lang_masks)
    expected = reference(images[img_masks], tokens, lang_masks)
    assert out.features.shape == (2, tokens.shape[1], 40) and backbone.hidden_size == 40
    assert torch.equal(out.mask, lang_masks) and out.extra is None
    torch.testing.assert_close(out.features[lang_masks], expected[lang_masks], rtol=1e-5, atol=1e-5)


def test_prepend_equals_placeholders_written_first(make_backbone) -> None:
    backbone = make_backbone(image_token_placement="auto")
    images = torch.randn(2, 2, 3, 28, 28, generator=torch.Generator().manual_seed(3))
    text = torch.tensor([[10, 11, 12], [20, 21, 0]])
    lang_masks = text != 0
    img_masks = torch.ones(2, 2, dtype=torch.bool)
    with_placeholders = torch.cat([torch.full((2, 2 * TOKENS_PER_IMAGE), IMG), text], dim=1)
    with torch.no_grad():
        prepended = backbone(images, text, img_masks, lang_masks)
        full_mask = torch.cat([img_masks.repeat_interleave(16, 1), lang_masks], 1)
        filled = backbone(images, with_placeholders, img_masks, full_mask)
    assert prepended.features.shape == filled.features.shape == (2, 35, 48)
    assert torch.equal(prepended.mask, filled.mask)
    torch.testing.assert_close(prepended.features, filled.features, rtol=1e-5, atol=1e-5)


def test_prepend_masks_out_missing_cameras(make_backbone) -> None:
    backbone = make_backbone(image_token_placement="prepend")
    images = torch.randn(1, 2, 3, 28, 28, generator=torch.Generator().manual_seed(4))
    text, lang_masks = torch.tensor([[10, 11, 12]]), torch.ones(1, 3, dtype=torch.bool)
    img_masks = torch.tensor([[True, False]])
    changed = images.clone()
    changed[0, 1] += 5.0  # only the missing camera changes
    with torch.no_grad():
        out = backbone(images, text, img_masks, lang_masks)
        out_changed = backbone(changed, text, img_masks, lang_masks)
    assert out.mask[0].tolist() == [True] * 16 + [False] * 16 + [True] * 3
    torch.testing.assert_close(out.features[out.mask], out_changed.features[out.mask], rtol=0, atol=1e-6)


def test_placeholder_count_must_match_valid_cameras(make_backbone) -> None:
    backbone = make_backbone()
    images, tokens, img_masks, lang_masks = batch_with_placeholders()
    img_masks = torch.ones_like(img_masks)  # row 1 now claims 2 images but its prompt has 1
    with pytest.raises(DataError, match=r"row 1 holds 16 image placeholder tokens .* give 32"):
        backbone(images, tokens, img_masks, lang_masks)
    with pytest.raises(DataError, match="placeholders"):
        strict = make_backbone(image_token_placement="placeholders")
        strict(images, tokens[:, -4:], img_masks, lang_masks[:, -4:])


def test_wrong_image_size_is_a_clear_error(make_backbone) -> None:
    with pytest.raises(DataError, match=r"\(B, N_cam, C, 28, 28\), got \(1, 1, 3, 32, 32\)"):
        make_backbone()(torch.randn(1, 1, 3, 32, 32), torch.tensor([[1]]), torch.ones(1, 1, dtype=torch.bool),
                        torch.ones(1, 1, dtype=torch.bool))


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"select_layer": 0}, "select_layer"),
        ({"select_layer": 5}, "select_layer"),
        ({"mlp_connector_layers": 2}, "mlp_connector_layers"),
        ({"mlp_connector_layers": 3, "use_pixel_shuffle": True}, "mlp_connector_layers"),
        ({"image_token_id": 500}, "image_token_id"),
        ({"use_pixel_shuffle": True, "downsample_ratio": 0.3}, "downsample_ratio"),
    ],
)
def test_bad_configs_name_the_parameter(make_backbone, overrides: dict, path: str) -> None:
    with pytest.raises(ConfigError, match=f"^{path}: "):
        make_backbone(**overrides)


def test_frozen_parts_stay_in_eval_and_get_no_gradients(make_backbone) -> None:
    backbone = make_backbone(tune_llm=False, tune_visual=True, project_to_dim=40).train()
    assert not backbone.eagle_model.language_model.training
    assert backbone.eagle_model.vision_model.training and backbone.eagle_model.mlp1.training
    images, tokens, img_masks, lang_masks = batch_with_placeholders()
    out = backbone(images, tokens, img_masks, lang_masks)
    out.features[out.mask].square().mean().backward()
    lm = backbone.eagle_model.language_model
    assert all(p.grad is None and not p.requires_grad for p in lm.parameters())
    patch = backbone.eagle_model.vision_model.vision_model.embeddings.patch_embedding.weight
    assert patch.grad is not None and patch.grad.abs().sum() > 0  # through the placeholders
    assert backbone.eagle_model.mlp1[0].weight.grad.abs().sum() > 0
    assert backbone.eagle_linear.weight.grad.abs().sum() > 0

    frozen_visual = make_backbone(tune_visual=False).train()
    assert not frozen_visual.eagle_model.vision_model.training and not frozen_visual.eagle_model.mlp1.training
    assert not any(p.requires_grad for p in frozen_visual.eagle_model.mlp1.parameters())


def test_built_from_a_spec_through_the_registry(tiny_kwargs) -> None:
    from vla_core.models import build_component

    spec = {"type": "EagleBackbone", **tiny_kwargs(project_to_dim=24)}
    backbone = build_component("vlm_backbones", spec)
    assert backbone.hidden_size == 24 and backbone.tokens_per_image == 16
    with pytest.raises(ConfigError, match="select_layr"):
        build_component("vlm_backbones", {**spec, "select_layr": 3})


def test_activation_checkpointing_gives_the_same_gradients(make_backbone) -> None:
    import copy

    from vla_core.engine.activation_checkpointing import apply_activation_checkpointing

    plain = make_backbone(project_to_dim=40).train()
    checkpointed = copy.deepcopy(plain)
    layer_types = {type(checkpointed.eagle_model.vision_model.vision_model.encoder.layers[0]),
                   type(checkpointed.eagle_model.language_model.model.layers[0])}
    assert apply_activation_checkpointing(checkpointed, layer_types) == 4  # 2 SigLIP + 2 Qwen3 layers
    batch = batch_with_placeholders()
    for model in (plain, checkpointed):
        out = model(*batch)
        out.features[out.mask].square().mean().backward()
    grads = {k: p.grad for k, p in checkpointed.named_parameters() if p.grad is not None}
    assert len(grads) == len([p for p in plain.parameters() if p.grad is not None]) > 0
    for name, param in plain.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(grads[name], param.grad, rtol=1e-5, atol=1e-6)


@pytest.fixture
def pack_everything(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Lower the packing threshold to one weight; count packed kernel calls by (out, in) shape."""
    monkeypatch.setattr(packed_linear, "PACK_MIN_NUMEL", 1)
    calls: Counter = Counter()
    original = PackedLinear.__call__

    def counting(self: PackedLinear, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            calls[(self.out_features, self.in_features)] += 1
        return original(self, x)

    monkeypatch.setattr(PackedLinear, "__call__", counting)
    return calls


def test_packed_features_equal_the_reference_pipeline(make_backbone, tiny_kwargs, pack_everything: Counter) -> None:
    backbone = make_backbone(project_to_dim=40)
    assert backbone.prepack_weights
    reference = ReferenceEagle(backbone, tiny_kwargs)
    images, tokens, img_masks, lang_masks = batch_with_placeholders()
    with torch.no_grad():
        packed = backbone(images, tokens, img_masks, lang_masks).features
    vision, text = tiny_kwargs()["vision_config"], tiny_kwargs()["text_config"]
    expected_shapes = {
        (vision["intermediate_size"], vision["hidden_size"]),  # SigLIP fc1
        (text["hidden_size"], vision["hidden_size"]),  # mlp1
        (text["intermediate_size"], text["hidden_size"]),  # Qwen3 gate/up
        (40, text["hidden_size"]),  # eagle_linear
    }
    assert expected_shapes <= set(pack_everything), expected_shapes - set(pack_everything)
    pack_everything.clear()
    backbone.prepack_weights = False
    with torch.no_grad():
        plain = backbone(images, tokens, img_masks, lang_masks).features
    assert not pack_everything
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)
    expected = reference(images[img_masks], tokens, lang_masks)
    torch.testing.assert_close(packed[lang_masks], expected[lang_masks], rtol=1e-5, atol=1e-5)


def test_training_forward_never_packs(make_backbone, pack_everything: Counter) -> None:
    backbone = make_backbone().train()
    images, tokens, img_masks, lang_masks = batch_with_placeholders()
    backbone(images, tokens, img_masks, lang_masks).features.sum().backward()
    assert not pack_everything
    assert backbone.eagle_model.mlp1[0].weight.grad is not None


def test_packed_weights_follow_in_place_updates(make_backbone, pack_everything: Counter) -> None:
    backbone = make_backbone()
    images, tokens, img_masks, lang_masks = batch_with_placeholders()
    with torch.no_grad():
        before = backbone(images, tokens, img_masks, lang_masks).features
        backbone.eagle_model.mlp1[0].weight.mul_(1.5)  # as an optimizer step would
        after = backbone(images, tokens, img_masks, lang_masks).features
        backbone.prepack_weights = False
        plain = backbone(images, tokens, img_masks, lang_masks).features
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, plain, rtol=1e-5, atol=1e-5)
