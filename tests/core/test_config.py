"""Configs: schemas derived from signatures, validation with full paths, files, overrides."""

from __future__ import annotations

import json

import pytest

from vla_core.config.loading import apply_overrides, load_config, read_config_file
from vla_core.config.schema import run_config_schema
from vla_core.config.spec import component_parameters, spec_model
from vla_core.config.validate import validate_spec
from vla_core.errors import ConfigError
from vla_core.models.llava_vla import LlavaVLA
from vla_core.models.mlp_action_head import MLPActionHead
from vla_core.testing import tiny_vla_spec

YAML_CONFIG = """
model:
  type: LlavaVLA
  vision_backbone:
    type: TransformersVisionBackbone
    config: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2,
             image_size: 32, patch_size: 8}
  projector: {type: MLPProjector, in_dim: 32, out_dim: 48}
  llm_backbone:
    type: TransformersLLMBackbone
    config: {vocab_size: 64, hidden_size: 48, intermediate_size: 96, num_hidden_layers: 1,
             num_attention_heads: 4, num_key_value_heads: 2}
  vla_head: {type: MLPActionHead, input_dim: 48, action_dim: 3, chunk_size: 4, state_dim: 4}
train: {steps: 5, batch_size: 2}
output_dir: runs/test
"""


def test_parameters_come_from_signature_and_docstring():
    params = {p.name: p for p in component_parameters(MLPActionHead)}
    assert params["input_dim"].required and params["input_dim"].type_name == "int"
    assert params["loss"].default == "l1"
    assert params["chunk_size"].doc == "number of future actions predicted (T)."


def test_subclass_forwarding_kwargs_inherits_parent_parameters():
    names = [p.name for p in component_parameters(LlavaVLA)]
    assert {"vlm_backbone", "vla_head", "freeze_llm_backbone", "name_mapping"} <= set(names)
    kinds = {p.name: p.component_kind for p in component_parameters(LlavaVLA)}
    assert kinds["vla_head"] == "heads" and kinds["projector"] == "projectors"
    assert spec_model(LlavaVLA).model_config["extra"] == "forbid"


def test_validation_fills_defaults_recursively():
    resolved = validate_spec("vlas", tiny_vla_spec(), "model")
    assert resolved["vla_head"]["loss"] == "l1"
    assert resolved["projector"]["num_layers"] == 2
    assert resolved["freeze_vlm_backbone"] is False


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda s: s["vla_head"].update(chunk_sise=4), "model.vla_head.chunk_sise", "Did you mean 'chunk_size'"),
        (lambda s: s["vla_head"].update(chunk_size="four"), "model.vla_head.chunk_size", "valid integer"),
        (lambda s: s["vla_head"].pop("action_dim"), "model.vla_head.action_dim", "missing required value"),
        (lambda s: s["vla_head"].update(type="MLPActionHed"), "model.vla_head.type", "Did you mean 'MLPActionHead'"),
        (lambda s: s["projector"].update(activation="swish"), "model.projector.activation", "'gelu'"),
        (lambda s: s.update(vla_head=[1, 2]), "model.vla_head", "expected a heads spec"),
    ],
)
def test_errors_name_the_full_path(change, path, fragment):
    spec = tiny_vla_spec()
    change(spec)
    with pytest.raises(ConfigError) as info:
        validate_spec("vlas", spec, "model")
    assert str(info.value).startswith(path + ":"), str(info.value)
    assert fragment in str(info.value)


def test_run_config_unknown_sections_and_settings(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(YAML_CONFIG.replace("train: {steps: 5", "train: {stepz: 5"))
    with pytest.raises(ConfigError, match=r"train.stepz: unknown setting. Did you mean 'steps'"):
        load_config(path)
    path.write_text(YAML_CONFIG.replace("output_dir:", "outptu_dir:"))
    with pytest.raises(ConfigError, match="Did you mean 'output_dir'"):
        load_config(path)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("{steps: 5, lora: {rnak: 8}}", "train.lora.rnak: unknown setting. Did you mean 'r' (the rank)?"),
        ("{steps: 5, lora: {alhpa: 8}}", "train.lora.alhpa: unknown setting. Did you mean 'alpha'?"),
        ("{steps: 5, lora: {target_module: [q_proj]}}", "train.lora.target_module: unknown setting. Did you mean "
                                                         "'target_modules'?"),
    ],
)
def test_nested_settings_suggest_the_key_meant(tmp_path, train, message):
    path = tmp_path / "run.yaml"
    path.write_text(YAML_CONFIG.replace("train: {steps: 5, batch_size: 2}", f"train: {train}"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(message), str(info.value)
    assert "Valid settings: r, alpha, dropout, target_modules, modules_to_save." in str(info.value)


def _write_all_formats(tmp_path):
    import yaml

    raw = yaml.safe_load(YAML_CONFIG)
    (tmp_path / "run.yaml").write_text(YAML_CONFIG)
    (tmp_path / "run.json").write_text(json.dumps(raw))
    toml_lines = ["output_dir = 'runs/test'", "[train]", "steps = 5", "batch_size = 2"]
    model = raw["model"]

    def table(prefix, spec):
        lines = [f"[{prefix}]"]
        nested = []
        for key, value in spec.items():
            if isinstance(value, dict):
                nested.append((f"{prefix}.{key}", value))
            else:
                lines.append(f"{key} = {json.dumps(value)}")
        for sub_prefix, sub in nested:
            lines += table(sub_prefix, sub)
        return lines

    (tmp_path / "run.toml").write_text("\n".join(toml_lines + table("model", model)) + "\n")
    (tmp_path / "run.py").write_text(
        "# FluxVLA style\nmodel = " + repr(model).replace("True", "True") + "\ntrain = dict(steps=5, batch_size=2)\n"
        "output_dir = 'runs/test'\n"
    )
    return [tmp_path / f"run.{ext}" for ext in ("yaml", "json", "toml", "py")]


def test_all_file_formats_give_the_same_config(tmp_path):
    configs = [load_config(path).model_dump() for path in _write_all_formats(tmp_path)]
    assert all(config == configs[0] for config in configs[1:])
    assert configs[0]["train"]["steps"] == 5


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  type: LlavaVLA\n  vla_head: {type: MLPActionHead\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+"):
        read_config_file(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file("no/such/config.yaml")


def test_overrides_parse_values_and_create_paths():
    config = {"model": {"vla_head": {"chunk_size": 4}}, "train": {"betas": [0.9, 0.95]}}
    out = apply_overrides(config, ["model.vla_head.chunk_size=8", "train.lr=3e-4", "train.betas.1=0.99",
                                   "model.vla_head.loss=mse", "train.lora={r: 4}"])
    assert out["model"]["vla_head"]["chunk_size"] == 8
    assert out["train"]["lr"] == 3e-4 and out["train"]["betas"] == [0.9, 0.99]
    assert out["train"]["lora"] == {"r": 4}
    assert config["model"]["vla_head"]["chunk_size"] == 4  # the input is not modified
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides(config, ["train.lr"])
    with pytest.raises(ConfigError, match="index into a list"):
        apply_overrides(config, ["train.betas.5=1"])


def test_json_schema_covers_installed_components():
    schema = run_config_schema()
    vlas = schema["$defs"]["vlas"]["oneOf"]
    llava = next(v for v in vlas if v["title"] == "LlavaVLA")
    assert llava["properties"]["type"]["const"] == "LlavaVLA"
    assert llava["properties"]["vla_head"]["anyOf"][0] == {"$ref": "#/$defs/heads"}
    heads = {v["title"] for v in schema["$defs"]["heads"]["oneOf"]}
    assert {"MLPActionHead", "AttentionPoolingHead"} <= heads
    assert "BrokenHead" not in heads
    mlp = next(v for v in schema["$defs"]["heads"]["oneOf"] if v["title"] == "MLPActionHead")
    assert set(mlp["required"]) == {"type", "input_dim", "action_dim", "chunk_size"}
    assert mlp["properties"]["chunk_size"]["description"] == "number of future actions predicted (T)."


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("max_grad_norm: -1.0", "train.max_grad_norm"),  # torch would flip the gradient's sign
        ("max_grad_norm: 0", "train.max_grad_norm"),  # ... or zero it: no training at all
        ("betas: [0.9, 1.5]", "train.betas.1"),  # torch's AdamW raises a bare ValueError
        ("lora: {r: 0}", "train.lora.r"),  # peft raises a bare ValueError
        ("lora: {dropout: 1.0}", "train.lora.dropout"),
    ],
)
def test_train_settings_out_of_range_are_config_errors(tmp_path, setting, path):
    config = tmp_path / "run.yaml"
    config.write_text(YAML_CONFIG.replace("train: {steps: 5, batch_size: 2}", f"train: {{{setting}}}"))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).startswith(path + ":"), str(info.value)


def test_yaml_floats_and_strings_that_only_look_like_them(tmp_path):
    assert apply_overrides({}, ["a=3e-4", "b=-1.5E3", "c=.5", "d=-e5", "e=.e5", "f=+e2"]) == {
        "a": 3e-4, "b": -1500.0, "c": 0.5, "d": "-e5", "e": ".e5", "f": "+e2"}  # no mantissa digit: a string
    path = tmp_path / "run.yaml"
    path.write_text(YAML_CONFIG.replace("output_dir: runs/test", "output_dir: -e5"))
    assert load_config(path).output_dir == "-e5"
