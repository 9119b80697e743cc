"""`precision: auto` follows the hardware: both outcomes through patched capability probes,
plus what the probe says about the CPU at hand."""

from __future__ import annotations

import pytest
import torch

from vla_core import precision as precision_module
from vla_core.errors import ConfigError
from vla_core.precision import describe_cpu, native_bf16, resolve_precision

AMX_CPU = {"cpu_name": "Intel Xeon Platinum 8480+", "architecture": "x86_64", "avx2": True, "avx512_f": True,
           "avx512_bf16": True, "amx_bf16": True, "amx_tile": True}
AVX512_BF16_CPU = {"cpu_name": "AMD EPYC 9654", "architecture": "x86_64", "avx2": True, "avx512_f": True,
                   "avx512_bf16": True, "amx_bf16": False}
AVX512_ONLY_CPU = {"cpu_name": "Intel Xeon Gold 6148", "architecture": "x86_64", "avx2": True, "avx512_f": True,
                   "avx512_bw": True, "avx512_bf16": False, "amx_bf16": False}
AVX2_CPU = {"cpu_name": "AMD EPYC", "architecture": "x86_64", "avx2": True, "avx512_f": False,
            "avx512_bf16": False, "amx_bf16": False}


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to run on a CPU described by a cpuinfo dict."""

    def use(info: dict, onednn_bf16: bool = False) -> None:
        monkeypatch.setattr(precision_module, "cpu_capability", lambda: dict(info))
        monkeypatch.setattr(precision_module, "bf16_kernels_available", lambda: onednn_bf16)

    return use


@pytest.mark.parametrize("info", [AMX_CPU, AVX512_BF16_CPU], ids=["amx", "avx512_bf16"])
def test_auto_is_bf16_where_the_cpu_computes_it(cpu, info):
    cpu(info, onednn_bf16=True)
    choice = resolve_precision("auto", "cpu")
    assert choice.resolved == "bf16" and choice.dtype == torch.bfloat16 and choice.warning is None
    assert info["cpu_name"] in choice.describe() and "auto" in choice.describe()


@pytest.mark.parametrize("info,onednn", [(AVX2_CPU, False), (AVX512_ONLY_CPU, True)], ids=["avx2", "avx512"])
def test_auto_is_fp32_where_bf16_is_emulated(cpu, info, onednn):
    # AVX512 without BF16: oneDNN runs bf16, but by emulation, so it is not chosen.
    cpu(info, onednn_bf16=onednn)
    choice = resolve_precision("auto", "cpu")
    assert choice.resolved == "fp32" and choice.dtype == torch.float32 and choice.warning is None
    assert "emulated" in choice.reason


def test_explicit_bf16_where_emulated_runs_with_a_warning(cpu):
    cpu(AVX2_CPU)
    choice = resolve_precision("bf16", "cpu")
    assert choice.resolved == "bf16"
    assert "slower than fp32" in choice.warning and "AMD EPYC" in choice.warning
    assert "\n" not in choice.warning  # one line


def test_explicit_choices_are_kept_where_native(cpu):
    cpu(AMX_CPU, onednn_bf16=True)
    assert resolve_precision("bf16", "cpu").warning is None
    assert resolve_precision("fp32", "cpu").resolved == "fp32"


def test_non_x86_cpus_ask_onednn(cpu):
    arm = {"cpu_name": "Neoverse-V1", "architecture": "aarch64"}
    cpu(arm, onednn_bf16=True)
    assert resolve_precision("auto", "cpu").resolved == "bf16"
    cpu(arm, onednn_bf16=False)
    assert resolve_precision("auto", "cpu").resolved == "fp32"


@pytest.mark.parametrize("native", [True, False])
def test_cuda_asks_the_device(monkeypatch, native):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    calls = []

    def supported(including_emulation: bool = True) -> bool:
        calls.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert resolve_precision("auto", "cuda").resolved == ("bf16" if native else "fp32")
    assert calls == [False]  # emulated bf16 does not count


def test_other_devices_and_bad_names():
    assert native_bf16("meta")[0] is False
    assert resolve_precision("auto", "meta").resolved == "fp32"
    with pytest.raises(ConfigError, match="auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")


def test_the_probe_answers_on_this_machine():
    # Whatever this CPU is, auto picks bf16 exactly when torch's cpuinfo reports native bf16,
    # and the CI log line names the CPU and its extensions.
    info = precision_module.cpu_capability()
    choice = resolve_precision("auto", "cpu")
    if info.get("architecture") == "x86_64":
        assert (choice.resolved == "bf16") == bool(info.get("amx_bf16") or info.get("avx512_bf16"))
    assert describe_cpu().startswith(str(info.get("cpu_name") or "unknown CPU"))


def test_autocast_follows_the_choice(cpu):
    cpu(AVX2_CPU)
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with resolve_precision("fp32", "cpu").autocast():
        assert layer(x).dtype == torch.float32
    with resolve_precision("bf16", "cpu").autocast():
        assert layer(x).dtype == torch.bfloat16
