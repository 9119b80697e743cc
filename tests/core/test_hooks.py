"""pluggy hooks: inline plugins on a test manager; foreign checkpoint loading through the hook."""

from __future__ import annotations

import json

import pytest

import vla_core
from vla_core.errors import CheckpointError
from vla_core.hooks import hookimpl
from vla_core.models import pretrained
from vla_core.testing import tiny_vla_spec


def test_inline_plugin_on_a_fresh_manager(vla_plugin_manager):
    calls = []

    class Sinks:
        @hookimpl
        def vla_metric_sinks(self, config):
            calls.append(config)
            return ["sink-a"]

    class MoreSinks:
        @hookimpl
        def vla_metric_sinks(self, config):
            return ["sink-b"]

    vla_plugin_manager.register(Sinks())
    vla_plugin_manager.register(MoreSinks())
    results = vla_plugin_manager.hook.vla_metric_sinks(config="cfg")
    assert sorted(sink for result in results for sink in result) == ["sink-a", "sink-b"]
    assert calls == ["cfg"]


def test_every_hook_is_prefixed_and_documented():
    from vla_core import hooks

    specs = [name for name in dir(hooks) if name.startswith("vla_")]
    assert {"vla_add_commands", "vla_train_callbacks", "vla_metric_sinks", "vla_load_foreign_checkpoint"} <= set(specs)
    for name in specs:
        doc = getattr(hooks, name).__doc__
        assert doc and ":param" in doc, name


def test_foreign_checkpoint_through_the_hook(tmp_path, vla_plugin_manager, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy"}))

    class ToyFormat:
        @hookimpl
        def vla_load_foreign_checkpoint(self, path, config):
            if config.get("model_type") != "toy":
                return None
            return vla_core.build_vla(tiny_vla_spec())

    from vla_core import plugin_manager

    monkeypatch.setattr(plugin_manager, "get_plugin_manager", lambda: vla_plugin_manager)
    with pytest.raises(CheckpointError, match="model_type 'toy'"):
        pretrained.load_pretrained(tmp_path)
    vla_plugin_manager.register(ToyFormat())
    vla = pretrained.load_pretrained(tmp_path)
    assert type(vla).__name__ == "LlavaVLA" and not vla.training
