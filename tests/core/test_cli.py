"""The `vla` CLI: listing, info, config commands, and bad input -> one clear paragraph, exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

GOOD = """
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
"""


def _fake_twin_site(root: Path) -> Path:
    site = root / "site"
    for dist in ("vla-twin-a", "vla-twin-b"):
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[vla.heads]\nMLPActionHead = vla_core.models:MLPActionHead\n")
    return site


BAD_INPUTS = {
    "missing file": (None, "does not exist"),
    "yaml syntax": ("model:\n  type: LlavaVLA\n  vla_head: {type: MLPActionHead\n", "YAML syntax error at line"),
    "unknown type": (GOOD.replace("type: MLPActionHead", "type: MLPActonHead"),
                     "model.vla_head.type: Unknown heads component 'MLPActonHead'. Did you mean 'MLPActionHead'"),
    "unknown key": (GOOD.replace("chunk_size: 4", "chunk_sise: 4"),
                    "model.vla_head.chunk_sise: unknown parameter 'chunk_sise' for MLPActionHead. Did you mean"),
    "wrong type": (GOOD.replace("chunk_size: 4", "chunk_size: four"), "model.vla_head.chunk_size: Input should be"),
    "missing value": (GOOD.replace("action_dim: 3, ", ""), "model.vla_head.action_dim: missing required value"),
    "duplicate": (GOOD, "is registered by more than one package"),
    "broken plugin": (GOOD.replace("type: MLPActionHead", "type: BrokenHead"),
                      "Could not import vla.heads entry 'BrokenHead' from package 'vla-broken'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_message_and_exit_code_2(case, tmp_path, vla_main, run_vla):
    text, expected = BAD_INPUTS[case]
    path = tmp_path / "run.yaml"
    if text is not None:
        path.write_text(text)
    if case == "duplicate":  # needs other installed distributions: a separate process
        result = run_vla("config", "validate", str(path), env={"PYTHONPATH": str(_fake_twin_site(tmp_path))})
        code, err = result.returncode, result.stderr
        assert "vla-twin-a" in err and "vla-core:MLPActionHead" in err
    else:
        code, _, err = vla_main("config", "validate", str(path))
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("Error: ")
    assert len(re.findall(r"\bError\b", err)) == 1, err  # said once, by the CLI, not again by the message
    assert expected in err, err


def test_debug_shows_the_traceback(tmp_path, run_vla):
    path = tmp_path / "run.yaml"
    path.write_text(GOOD.replace("type: MLPActionHead", "type: BrokenHead"))
    result = run_vla("--debug", "config", "validate", str(path))
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "RuntimeError: vla-broken fails on import on purpose" in result.stderr


def test_validate_and_override(tmp_path, vla_main):
    path = tmp_path / "run.yaml"
    path.write_text(GOOD)
    code, out, err = vla_main("config", "validate", str(path), "--set", "model.vla_head.chunk_size=6", "--show")
    assert code == 0, err
    assert json.loads(out)["model"]["vla_head"]["chunk_size"] == 6


def test_list_components_json_and_check(vla_main):
    _, out, _ = vla_main("list-components", "--kind", "heads", "--check", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["BrokenHead"]["status"] == "broken"
    assert rows["MLPActionHead"]["status"] == "ok"
    _, table, _ = vla_main("list-components", "--filter", "MLP*")
    assert "MLPActionHead" in table and "MLPProjector" in table and "LlavaVLA" not in table


def test_info_shows_parameters_and_package(vla_main):
    _, out, _ = vla_main("info", "MLPActionHead", "--json")
    info = json.loads(out)  # one object, not a list of one
    assert info["package"] == "vla-core" and info["kind"] == "heads"
    chunk = next(p for p in info["parameters"] if p["name"] == "chunk_size")
    assert chunk == {"name": "chunk_size", "type": "int", "default": "required",
                     "description": "number of future actions predicted (T)."}
    code, _, err = vla_main("info", "MLPActionHed")
    assert code == 2 and "Did you mean 'MLPActionHead'" in err


def test_version_and_schema(vla_main, tmp_path):
    from vla_core import __version__

    assert vla_main("--version")[1].strip() == f"vla {__version__}"
    out = tmp_path / "schema.json"
    assert vla_main("config", "schema", "-o", str(out))[0] == 0
    assert json.loads(out.read_text())["title"] == "vla run config"


def test_plugin_commands_through_the_hook(vla_main):
    code, out, err = vla_main("example-head", "--chunk-size", "4")
    assert code == 0, err
    assert out.startswith("AttentionPoolingHead:")
