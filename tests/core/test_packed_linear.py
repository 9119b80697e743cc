"""packed_linears / PackedLinear: oneDNN-packed weights give F.linear's numbers, follow the
weights, stay out of state dicts and out of autograd."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vla_core.models import packed_linear
from vla_core.models.packed_linear import PackedLinear, can_pack, packed_linears, packing_dtype, routable_linears
from vla_core.precision import bf16_kernels_available

RTOL = 1e-5  # relative to the output's scale: oneDNN and MKL sum in different orders


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> bool:
    return (actual - expected).abs().max().item() <= rtol * expected.abs().max().item()


class Tiny(nn.Module):
    """Two layers above the test threshold, one below it, one bias-free."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16, bias=False)
        self.small = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.small(self.down(torch.relu(self.up(x))))


@pytest.fixture
def low_threshold(monkeypatch):
    """Pack layers of >= 256 weights, so that tiny test layers are packed."""
    monkeypatch.setattr(packed_linear, "PACK_MIN_NUMEL", 256)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the packed kernel's calls."""
    calls = []
    original = PackedLinear.__call__

    def counting(self, x):
        if self.packed is not None:
            calls.append((self.out_features, self.in_features))
        return original(self, x)

    monkeypatch.setattr(PackedLinear, "__call__", counting)
    return calls


def test_packing_is_available_here():
    # The speed-up this module exists for; the other tests would pass vacuously without it.
    assert can_pack(torch.zeros(256, 256))
    assert not can_pack(torch.zeros(16, 16))
    assert not can_pack(torch.zeros(256, 256, dtype=torch.float16))
    assert can_pack(torch.zeros(16, 16), min_numel=256)


@pytest.mark.parametrize("kernels", [True, False])
def test_bf16_is_packed_in_bf16_only_where_onednn_has_bf16_kernels(monkeypatch, kernels):
    monkeypatch.setattr(packed_linear, "bf16_kernels_available", lambda: kernels)
    assert packing_dtype(torch.bfloat16) == (torch.bfloat16 if kernels else torch.float32)
    assert packing_dtype(torch.float32) == torch.float32


def test_fp32_fallback_for_bf16_weights_runs_on_any_cpu(monkeypatch):
    # What an AVX2-only CPU does, forced here whatever this CPU has: an fp32 packed copy.
    monkeypatch.setattr(packed_linear, "bf16_kernels_available", lambda: False)
    torch.manual_seed(0)
    weight, bias = torch.randn(384, 256, dtype=torch.bfloat16), torch.randn(384, dtype=torch.bfloat16)
    x = torch.randn(3, 50, 256, dtype=torch.bfloat16)
    packed = PackedLinear(weight, bias)
    assert packed.packed is not None and packed.compute_dtype == torch.float32
    out = packed(x)
    assert out.dtype == torch.bfloat16
    assert close(out.float(), F.linear(x.float(), weight.float(), bias.float()), 1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_linear_equals_f_linear(dtype):
    # bf16 runs the branch this CPU has: the bf16 kernel where oneDNN has one (AMX/AVX512),
    # the fp32 fallback elsewhere (AVX2); either way no crash and F.linear's numbers.
    torch.manual_seed(0)
    weight, bias = torch.randn(384, 256, dtype=dtype), torch.randn(384, dtype=dtype)
    x = torch.randn(3, 50, 256, dtype=dtype)
    packed = PackedLinear(weight, bias)
    assert packed.packed is not None
    expected_compute = dtype if dtype == torch.float32 or bf16_kernels_available() else torch.float32
    assert packed.compute_dtype == expected_compute
    assert packed(x).dtype == dtype
    rtol = RTOL if dtype == torch.float32 else 1e-2
    assert close(packed(x).float(), F.linear(x, weight, bias).float(), rtol)
    gelu = PackedLinear(weight, bias, gelu=True)
    assert close(gelu(x).float(), F.gelu(F.linear(x, weight, bias), approximate="tanh").float(), rtol)
    lin_a, lin_b = nn.Linear(256, 300).to(dtype), nn.Linear(256, 100).to(dtype)
    both = PackedLinear.concat([lin_a, lin_b])
    assert close(both(x).float(), torch.cat([lin_a(x), lin_b(x)], -1).float(), rtol)


def test_routed_layers_equal_f_linear_and_only_large_ones(low_threshold, kernel_calls):
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(4, 7, 16)
    with torch.no_grad():
        expected = model(x)
        with packed_linears(model) as routed:
            ours = model(x)
    assert routed == 2  # up (512 weights) and down (512); small (32) stays plain
    assert sorted(kernel_calls) == [(16, 32), (32, 16)]
    assert close(ours, expected)
    # outside the block the layers are plain again
    assert all("forward" not in m.__dict__ for m in model.modules())
    kernel_calls.clear()
    with torch.no_grad():
        model(x)
    assert kernel_calls == []


def test_default_threshold_leaves_tiny_layers_alone(kernel_calls):
    model = Tiny().eval()
    with torch.no_grad(), packed_linears(model) as routed:
        model(torch.randn(2, 16))
    assert routed == 0 and kernel_calls == []


def test_disabled_routes_nothing(low_threshold, kernel_calls):
    model = Tiny().eval()
    with torch.no_grad(), packed_linears(model, enabled=False) as routed:
        model(torch.randn(2, 16))
    assert routed == 0 and kernel_calls == []


def test_not_used_when_grad_is_enabled(low_threshold, kernel_calls):
    torch.manual_seed(0)
    model = Tiny()
    reference = copy.deepcopy(model)
    x = torch.randn(4, 16)
    with packed_linears(model):
        model(x).sum().backward()
    assert kernel_calls == []
    reference(x).sum().backward()
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad)


def test_rebuilt_after_in_place_update(low_threshold, kernel_calls):
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(5, 16)
    with torch.no_grad(), packed_linears(model):
        before = model(x)
        model.up.weight.mul_(-2.0)  # in place: same storage, version counter moves
        model.down.weight.add_(0.5)
        after = model(x)
        expected = F.linear(F.linear(torch.relu(F.linear(x, model.up.weight, model.up.bias)),
                                     model.down.weight), model.small.weight, model.small.bias)
    assert not close(after, before)
    assert close(after, expected)


def test_rebuilt_after_load_state_dict_and_reused_while_unchanged(low_threshold, monkeypatch):
    torch.manual_seed(0)
    model, other = Tiny().eval(), Tiny().eval()
    x = torch.randn(3, 16)
    builds = []
    original_init = PackedLinear.__init__

    def counting_init(self, weight, *args, **kwargs):
        builds.append(tuple(weight.shape))
        original_init(self, weight, *args, **kwargs)

    monkeypatch.setattr(PackedLinear, "__init__", counting_init)
    with torch.no_grad():
        with packed_linears(model):
            model(x)
        with packed_linears(model):
            model(x)  # a second block reuses the packed copies
        assert len(builds) == 2
        model.load_state_dict(other.state_dict())  # copies into the same tensors
        with packed_linears(model):
            ours = model(x)
        assert len(builds) == 4
        expected = other(x)
    assert close(ours, expected)


def test_bias_change_alone_rebuilds(low_threshold):
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(3, 16)
    with torch.no_grad(), packed_linears(model):
        model(x)
        model.up.bias.add_(1.0)
        ours = model(x)
    with torch.no_grad():
        expected = model(x)
    assert close(ours, expected)


def test_state_dict_and_parameters_unchanged(low_threshold):
    torch.manual_seed(0)
    model = Tiny().eval()
    keys = list(model.state_dict())
    params = [id(p) for p in model.parameters()]
    with torch.no_grad(), packed_linears(model):
        model(torch.randn(2, 16))
        assert list(model.state_dict()) == keys
        copy.deepcopy(model)  # the packed (opaque) tensors are not reachable from the model
    assert list(model.state_dict()) == keys == ["up.weight", "up.bias", "down.weight", "small.weight", "small.bias"]
    assert [id(p) for p in model.parameters()] == params


def test_nested_blocks(low_threshold, kernel_calls):
    torch.manual_seed(0)
    model = Tiny().eval()
    with torch.no_grad(), packed_linears(model), packed_linears(model.up) as inner:
        assert inner == 1
        model(torch.randn(2, 16))
        assert "forward" in model.up.__dict__
    assert len(kernel_calls) == 2
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_bfloat16_model(low_threshold, kernel_calls):
    torch.manual_seed(0)
    model = Tiny().eval().to(torch.bfloat16)
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = model(x).float()
        with packed_linears(model):
            ours = model(x).float()
    assert len(kernel_calls) == 2
    assert close(ours, expected, 2e-2)


def test_overridden_forwards_and_foreign_patches_are_left_alone(low_threshold):
    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    class Named(nn.Linear):  # e.g. a projector that only renames its arguments
        pass

    model = nn.Sequential(Scaled(16, 32), nn.Linear(32, 16), Named(16, 32))
    model[1].forward = lambda x: x[..., :16]  # someone else's patch
    assert routable_linears(model) == [model[2]]


def test_cache_entries_die_with_their_layers(low_threshold):
    import gc
    import weakref

    model = Tiny().eval()
    with torch.no_grad(), packed_linears(model):
        model(torch.randn(2, 16))
    assert model.up in packed_linear._PACKED_CACHE and model.down in packed_linear._PACKED_CACHE
    layer = weakref.ref(model.up)
    del model
    gc.collect()
    assert layer() is None  # the cache did not keep the layer (or its weights) alive
