"""Hugging Face OpenVLA / OpenVLA-OFT directories, written in the released layout from independently
built reference modules, load through `vla_core.load_pretrained` and compute the reference outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from vla_openvla import hooks
from vla_openvla.hf_checkpoint import OFT_PLATFORM_CHUNK_SIZES, load_hf_openvla, oft_spec, openvla_spec

import vla_core
from vla_core.errors import CheckpointError

NORM_STATS = {"bridge_orig": {"action": {"q01": [-0.1] * 4, "q99": [0.1] * 4, "mask": [True] * 3 + [False]}}}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def hf_openvla(ref, tmp_path_factory):
    state = ref.released_state(seed=21)
    directory = tmp_path_factory.mktemp("hf") / "openvla-tiny"
    ref.write_released_openvla(directory, state, NORM_STATS)
    return directory, {k: v.float() for k, v in state.items()}


def test_openvla_directory_loads_and_decodes_like_the_reference(ref, hf_openvla):
    directory, state = hf_openvla
    vla = vla_core.load_pretrained(directory)
    assert type(vla).__name__ == "OpenVLA" and vla.load_report.ok and not vla.training
    assert vla.action_dim == 4 and vla.norm_stats == NORM_STATS
    for key, value in state.items():
        assert torch.equal(vla.state_dict()[key], value), key

    batch = ref.prompt_batch([7], seed=22)
    pixels = torch.rand(1, 3, ref.IMAGE_SIZE, ref.IMAGE_SIZE)
    batch["images"] = ((pixels - 0.5) / 0.5)[:, None]  # vla's processor: image_mean = image_std = 0.5
    got = vla.predict_action(**{k: batch[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")})

    # The reference: each encoder gets its own normalisation of the image (DINOv2 ImageNet, SigLIP 0.5).
    llm = ref.reference_llama(state)
    llm.generation_config.eos_token_id = None
    vits = ref.reference_featurizers(state)
    with torch.no_grad():
        patches = torch.cat([vits[0].get_intermediate_layers((pixels - IMAGENET_MEAN) / IMAGENET_STD, n={1})[0],
                             vits[1].get_intermediate_layers((pixels - 0.5) / 0.5, n={1})[0]], dim=2)
        embeds = llm.get_input_embeddings()(batch["lang_tokens"])
        embeds = torch.cat([embeds[:, :1], ref.reference_projector(state, patches), embeds[:, 1:]], dim=1)
        generated = llm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                 max_new_tokens=4, do_sample=False, pad_token_id=0)
    torch.testing.assert_close(got[0, 0], ref.reference_decode(generated[0, -4:]), rtol=0, atol=0)


def test_oft_directory_loads_head_and_proprio_files(ref, hf_openvla, tmp_path):
    directory, state = hf_openvla
    oft_dir = tmp_path / "oft"
    oft_dir.mkdir()
    for file in directory.iterdir():
        (oft_dir / file.name).write_bytes(file.read_bytes())
    torch.manual_seed(23)
    d, a, h, p = 64, 3, 48, 5
    head = {"module.model.layer_norm1.weight": torch.rand(d * a) + 0.5,
            "module.model.layer_norm1.bias": torch.randn(d * a),
            "module.model.fc1.weight": torch.randn(h, d * a) * 0.05, "module.model.fc1.bias": torch.randn(h),
            "module.model.layer_norm2.weight": torch.rand(h) + 0.5, "module.model.layer_norm2.bias": torch.randn(h),
            "module.model.fc2.weight": torch.randn(a, h) * 0.1, "module.model.fc2.bias": torch.randn(a)}
    for block in range(2):
        head.update({f"module.model.mlp_resnet_blocks.{block}.ffn.0.weight": torch.rand(h) + 0.5,
                     f"module.model.mlp_resnet_blocks.{block}.ffn.0.bias": torch.randn(h),
                     f"module.model.mlp_resnet_blocks.{block}.ffn.1.weight": torch.randn(h, h) * 0.1,
                     f"module.model.mlp_resnet_blocks.{block}.ffn.1.bias": torch.randn(h)})
    proprio = {"module.fc1.weight": torch.randn(d, p) * 0.3, "module.fc1.bias": torch.randn(d),
               "module.fc2.weight": torch.randn(d, d) * 0.1, "module.fc2.bias": torch.randn(d)}
    torch.save(head, oft_dir / "action_head--100_checkpoint.pt")
    torch.save(proprio, oft_dir / "proprio_projector--100_checkpoint.pt")
    statistics = {"libero_spatial_no_noops": {"action": {"q01": [0.0] * a}, "proprio": {"q01": [0.0] * p}}}
    (oft_dir / "dataset_statistics.json").write_text(json.dumps(statistics))

    with pytest.raises(CheckpointError, match="chunk_size=N"):  # (3, 5) is no OFT platform
        vla_core.load_pretrained(oft_dir)
    vla = load_hf_openvla(oft_dir, chunk_size=2)
    assert type(vla).__name__ == "OpenVLAOFT" and vla.load_report.ok and vla.norm_stats == statistics

    batch = ref.prompt_batch([6], seed=24, n_cam=2, state_dim=p)
    batch["images"] = torch.cat([batch["images"], torch.randn_like(batch["images"])], dim=2)  # (1, 2, 6, H, W)
    got = vla.predict_action(**{k: batch[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")})
    # The reference takes the DINOv2/SigLIP-normalised copies stacked on channels (6 channels).
    full = {**state, **{f"proprio_projector.{k.removeprefix('module.')}": v for k, v in proprio.items()}}
    hidden = ref.reference_oft_action_hidden(full, batch["images"], batch["lang_tokens"], batch["states"],
                                             num_action_tokens=6, proprio_dim=p)
    expected = ref.reference_l1_head(head, hidden, chunk_size=2, prefix="module.model.")
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_released_config_json_maps_to_the_openvla_7b_spec(tmp_path):
    """openvla/openvla-7b's config.json (abridged); sizes come from the weight headers."""
    released = {
        "model_type": "openvla", "use_fused_vision_backbone": True, "image_sizes": [224, 224],
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "pad_to_multiple_of": 64, "n_action_bins": 256,
        "text_config": {"model_type": "llama", "pad_token_id": 32000, "torch_dtype": "bfloat16", "vocab_size": 32064},
        "norm_stats": {"bridge_orig": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 7}}},
    }
    # Stand-in headers: the real fc1 is (8704, 2176) and the embedding (32064, 4096).
    save_file({"projector.fc1.weight": torch.zeros(16, 4), "language_model.model.embed_tokens.weight":
               torch.zeros(32064, 8, dtype=torch.bfloat16)}, str(tmp_path / "model.safetensors"))
    spec = openvla_spec(tmp_path, released)
    assert spec["type"] == "OpenVLA" and spec["action_dim"] == 7 and spec["prompt_suffix_token_id"] == 29871
    assert spec["projector"] == {"type": "PrismaticProjector", "in_dim": 4, "out_dim": 8, "arch": "fused-gelu-mlp"}
    assert spec["vision_backbone"]["timm_model_ids"] == released["timm_model_ids"]
    assert spec["vision_backbone"]["image_normalization"] == "timm"
    assert spec["text_config"]["vocab_size"] == 32064 and spec["text_config"]["pad_token_id"] == 32000


def test_oft_platforms_set_the_chunk_size():
    base = {"projector": {"out_dim": 16}}
    for (action_dim, proprio_dim), chunk in OFT_PLATFORM_CHUNK_SIZES.items():
        head = {"model.fc1.weight": torch.zeros(8, 16 * action_dim), "model.fc2.weight": torch.zeros(action_dim, 8)}
        proprio = {"fc1.weight": torch.zeros(16, proprio_dim)}
        spec = oft_spec(base, head, proprio, chunk_size=None)
        assert spec["chunk_size"] == spec["vla_head"]["chunk_size"] == chunk
    assert OFT_PLATFORM_CHUNK_SIZES[(7, 8)] == 8  # LIBERO


def test_unsupported_variants_and_other_formats(hf_openvla, tmp_path):
    assert hooks.vla_load_foreign_checkpoint(path=tmp_path, config={"model_type": "pi0"}) is None
    directory, _ = hf_openvla
    film = tmp_path / "film"
    film.mkdir()
    for file in directory.iterdir():
        (film / file.name).write_bytes(file.read_bytes())
    torch.save({}, film / "vision_backbone--100_checkpoint.pt")
    with pytest.raises(CheckpointError, match="FiLM"):
        vla_core.load_pretrained(film)
