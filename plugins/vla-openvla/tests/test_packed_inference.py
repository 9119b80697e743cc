"""predict_action through packed oneDNN weights (prepack_weights) gives the reference's actions.

The toy layers are far below the packing threshold, so these tests lower it to one
weight: every linear layer (both timm ViTs, the projectors, LLaMA, the LM head, OFT's
action head) then runs through the packed kernels.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

import vla_core
from vla_core.models import packed_linear
from vla_core.models.packed_linear import PackedLinear, packed_linears

OBS_KEYS = ("images", "lang_tokens", "lang_masks", "img_masks", "states")


def observation(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in OBS_KEYS}


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


def test_packed_openvla_decodes_like_transformers_generate(ref, pack_everything: Counter) -> None:
    torch.manual_seed(0)
    vla = vla_core.build_vla(ref.openvla_spec()).eval()
    assert vla.prepack_weights
    lengths = [6, 9]
    batch = ref.prompt_batch(lengths, seed=7)
    keys = list(vla.state_dict())
    packed = vla.predict_action(**observation(batch))
    packed_cacheless = vla.predict_action(**observation(batch), use_kv_cache=False)
    width, vocab = ref.TEXT_CONFIG["hidden_size"], ref.TEXT_CONFIG["vocab_size"]
    dino, siglip = (o["embed_dim"] for o in ref.TIMM_OVERRIDES)
    expected_shapes = {
        (3 * dino, dino), (3 * siglip, siglip),  # each ViT's fused qkv
        (ref.TEXT_CONFIG["intermediate_size"], width),  # LLaMA gate_proj / up_proj
        (vocab, width),  # the LM head
    }
    assert expected_shapes <= set(pack_everything), expected_shapes - set(pack_everything)
    assert list(vla.state_dict()) == keys

    # The same hidden states as the unpacked model, and the same tokens as transformers' generate.
    pack_everything.clear()
    vla.prepack_weights = False
    plain = vla.predict_action(**observation(batch))
    assert not pack_everything
    torch.testing.assert_close(packed, plain, rtol=0, atol=0)
    torch.testing.assert_close(packed_cacheless, plain, rtol=0, atol=0)
    embeds, mask, _ = vla.multimodal_inputs(**{k: batch[k] for k in OBS_KEYS if k != "states"})
    with torch.no_grad():
        hidden_plain = vla.last_hidden_state(embeds, mask.long())
        with packed_linears(vla):
            hidden_packed = vla.last_hidden_state(embeds, mask.long())
    torch.testing.assert_close(hidden_packed, hidden_plain, rtol=1e-5, atol=1e-5)

    state = vla.state_dict()
    llm = ref.reference_llama(state)
    llm.generation_config.eos_token_id = None
    for row, length in enumerate(lengths):
        embeds = ref.reference_multimodal_embeds(state, llm, batch["images"][row : row + 1, 0],
                                                 batch["lang_tokens"][row : row + 1, :length])
        with torch.no_grad():
            ones = torch.ones(embeds.shape[:2], dtype=torch.long)
            generated = llm.generate(inputs_embeds=embeds, attention_mask=ones, max_new_tokens=4, do_sample=False,
                                     pad_token_id=0)
        torch.testing.assert_close(packed[row, 0], ref.reference_decode(generated[0, -4:]), rtol=0, atol=0)


def test_packed_oft_equals_its_reference_forward(ref, pack_everything: Counter) -> None:
    torch.manual_seed(0)
    oft = vla_core.build_vla(ref.oft_spec()).eval()
    lengths = [5, 8]
    batch = ref.prompt_batch(lengths, seed=11, n_cam=2)
    packed = oft.predict_action(**observation(batch))
    head = oft.vla_head.model  # MLPResNet
    for layer in (head.fc1, head.fc2, oft.proprio_projector.fc1, oft.language_model.model.layers[0].mlp.down_proj):
        assert tuple(layer.weight.shape) in pack_everything
    oft.prepack_weights = False
    plain = oft.predict_action(**observation(batch))
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)
    state = oft.state_dict()
    for row, length in enumerate(lengths):
        expected = ref.reference_oft_action_hidden(state, batch["images"][row : row + 1],
                                                   batch["lang_tokens"][row : row + 1, :length],
                                                   batch["states"][row : row + 1], num_action_tokens=6, proprio_dim=5)
        torch.testing.assert_close(packed[row : row + 1], ref.reference_l1_head(state, expected, chunk_size=2),
                                   rtol=1e-4, atol=1e-4)
