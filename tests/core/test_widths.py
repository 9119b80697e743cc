"""Widths that must agree across components fail validation, naming both config paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vla_core.config.validate import validate_spec
from vla_core.config.widths import check_widths, component_widths, transformers_width
from vla_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PROCESSOR = {"type": "VLAProcessor", "max_state_dim": 4, "max_action_dim": 3, "chunk_size": 4}


def _spec(tiny_vla_spec, **head_changes):
    spec = tiny_vla_spec()
    spec["vla_head"].update(head_changes)
    spec["processor"] = dict(PROCESSOR)
    return validate_spec("vlas", spec, "model")


# (override, the path to fix, the other path named, fragment of the fix)
MISMATCHES = [
    ("model.vla_head.input_dim=64", "model.vla_head.input_dim", "model.llm_backbone.config.hidden_size",
     "Set model.vla_head.input_dim to 96"),
    ("model.projector.in_dim=32", "model.projector.in_dim", "model.vision_backbone.config.hidden_size",
     "Set model.projector.in_dim to 64"),
    ("model.projector.out_dim=64", "model.projector.out_dim", "model.llm_backbone.config.hidden_size",
     "Set model.projector.out_dim to 96"),
]


@pytest.mark.parametrize(("override", "fix_path", "other_path", "fix"), MISMATCHES)
def test_width_mismatch_fails_validate_and_build_with_both_paths(override, fix_path, other_path, fix, vla_main):
    for command in (["config", "validate"], ["build"]):
        code, out, err = vla_main(*command, str(REPO / "configs" / "tiny_llava.yaml"), "--set", override)
        assert code == 2, err
        assert "Traceback" not in err and not out  # build stops before building anything
        assert err.startswith(f"Error: {fix_path}: is ")
        assert other_path in err and fix in err


def test_the_issues_example_in_a_process(run_vla):
    config = str(REPO / "configs" / "tiny_llava.yaml")
    result = run_vla("config", "validate", config, "--set", "model.vla_head.input_dim=64")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "Error: model.vla_head.input_dim: is 64, but model.llm_backbone.config.hidden_size is 96 (the head reads "
        "the LLM's features). Set model.vla_head.input_dim to 96, or change model.llm_backbone.config.hidden_size."
    ]


def test_processor_widths_against_the_head(tiny_vla_spec):
    check_widths(_spec(tiny_vla_spec), "model")  # agrees: no error
    check_widths(_spec(tiny_vla_spec, state_dim=0), "model")  # 0: the head ignores the state by choice
    with pytest.raises(ConfigError, match="silently dropping") as info:
        check_widths(_spec(tiny_vla_spec, state_dim=2), "model")
    assert str(info.value).startswith("model.vla_head.state_dim: is 2, but model.processor.max_state_dim is 4")
    with pytest.raises(ConfigError, match=r"model.vla_head.action_dim: is 2, .*model.processor.max_action_dim"):
        check_widths(_spec(tiny_vla_spec, action_dim=2), "model")
    with pytest.raises(ConfigError, match=r"model.vla_head.chunk_size: is 8, .*model.processor.chunk_size is 4"):
        check_widths(_spec(tiny_vla_spec, chunk_size=8), "model")


def test_a_vla_without_head_is_checked_itself():
    spec = {"type": "OpenVLA", "action_dim": 6, "processor": {"max_action_dim": 7}}
    with pytest.raises(ConfigError, match=r"^model.action_dim: is 6, but model.processor.max_action_dim is 7"):
        check_widths(spec, "model")


def test_data_chunk_against_the_processor():
    spec = {"type": "LlavaVLA", "processor": {"chunk_size": 8}}
    check_widths(spec, "model", {"type": "LeRobotDataset", "chunk_size": 8})
    with pytest.raises(ConfigError, match=r"model.processor.chunk_size: is 8, but data.chunk_size is 4"):
        check_widths(spec, "model", {"type": "LeRobotDataset", "chunk_size": 4})


def test_hidden_size_from_transformers_defaults_and_a_saved_config(tmp_path):
    default = transformers_width({"model_type": "qwen2", "config": {"num_hidden_layers": 1}}, "model.llm_backbone")
    from transformers import Qwen2Config

    assert default is not None and default.value == Qwen2Config().hidden_size
    assert default.path == "model.llm_backbone.config.hidden_size" and "default for qwen2" in default.source
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 40}))
    saved = transformers_width({"model_type": "qwen2", "config": {}, "pretrained_name_or_path": str(tmp_path)}, "m")
    assert saved is not None and (saved.value, saved.path) == (40, "m.pretrained_name_or_path")
    # Overrides win over the saved config, as in AutoModel.from_pretrained(path, **config).
    both = {"model_type": "qwen2", "config": {"hidden_size": 24}, "pretrained_name_or_path": str(tmp_path)}
    assert transformers_width(both, "m").value == 24
    # Conv nets: the width of the stage feature_layer reads.
    conv = {"model_type": "resnet", "config": {"hidden_sizes": [8, 16, 32]}, "feature_layer": -2}
    assert transformers_width(conv, "v").value == 16
    assert transformers_width({"model_type": "not-a-model", "config": {}}, "v") is None  # unknown: skipped


def test_a_component_declares_its_widths(register_component):
    class WideHead:
        """A head whose feature width is not one of the known parameter names."""

        def __init__(self, width: int = 8, action_dim: int = 3) -> None:
            self.width = width

        @classmethod
        def declared_widths(cls, spec):
            return {"features_in": (spec["width"], "width"), "action": None}

    register_component("heads", "WideHead", WideHead)
    widths = component_widths("heads", {"type": "WideHead", "width": 12, "action_dim": 3}, "model.vla_head")
    assert {role: (w.value, w.path) for role, w in widths.items()} == {"features_in": (12, "model.vla_head.width")}


def test_a_vla_declares_its_links(register_component):
    from vla_core.config.widths import WidthLink

    class ExpertVLA:
        """A VLA whose head reads its own expert's width."""

        def __init__(self, expert_width: int = 8) -> None:
            pass

        @classmethod
        def declared_widths(cls, spec):
            return {"features_out": (spec["expert_width"], "expert_width")}

        @classmethod
        def width_links(cls, spec):
            return [WidthLink(("vla_head", "features_in"), ("", "features_out"), "the head reads the expert")]

    register_component("vlas", "ExpertVLA", ExpertVLA)
    spec = {"type": "ExpertVLA", "expert_width": 16, "vla_head": {"type": "MLPActionHead", "input_dim": 8}}
    with pytest.raises(ConfigError, match=r"model.vla_head.input_dim: is 8, but model.expert_width is 16 \(the head"):
        check_widths(spec, "model")


def test_every_shipped_config_validates(vla_main):
    for config in sorted((REPO / "configs").glob("*.yaml")):
        code, out, err = vla_main("config", "validate", str(config))
        assert code == 0 and out.startswith(f"{config}: valid"), (config, err)


def test_inference_model_is_checked_too(tmp_path, vla_main):
    raw = yaml.safe_load((REPO / "configs" / "groot_n15_head_tiny.yaml").read_text())
    raw["inference_model"]["vla_head"]["backbone_embedding_dim"] = 64
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, _, err = vla_main("config", "validate", str(path))
    assert code == 2 and err.startswith("Error: inference_model.vla_head.backbone_embedding_dim: is 64"), err
