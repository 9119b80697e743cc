"""The plugin as `vla` sees it: light to list, three heads in `vla.heads` that read history."""

from __future__ import annotations

from vla_core.cli.component_info import describe_component
from vla_core.testing import assert_plugin_is_light


def test_listing_the_plugin_imports_no_torch():
    assert_plugin_is_light("vla-heads-roboflamingo")


def test_vla_info_shows_the_heads_with_the_history_capability():
    for name, window in (("FCDecoder", "1"), ("DeterministicDecoder", "8"), ("GPTDecoder", "8")):
        (info,) = describe_component(name, "heads")
        assert info["package"] == "vla-heads-roboflamingo"
        assert info["capabilities"] == {"supports_history": True}
        params = {p["name"]: p for p in info["parameters"]}
        assert params["window_size"]["default"] == window and params["in_features"]["default"] == "required"
        assert {"history_len", "out_features", "multi_step_action", "use_state", "gripper_loss_weight"} <= set(params)
