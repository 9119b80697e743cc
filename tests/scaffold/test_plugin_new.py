"""`vla plugin new`: every kind gives an installable package whose own tests pass, that
`vla list-components` lists, and (head, vlm_backbone) that trains inside a LlavaVLA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from engine_fixtures import register_synthetic, run_config, train
from scaffold_helpers import PACKAGES, vla_cli

import vla_core
from vla_core.engine.metrics import read_metrics
from vla_core.registry import KINDS
from vla_core.scaffold import KIND_TEMPLATES


def _env_with(site) -> dict[str, str]:
    paths = [str(site), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}


def test_every_component_kind_but_processors_has_a_template():
    # Processors are data plumbing shared by all models (VLAProcessor), not a plugin's first component.
    assert {t.registry_kind for t in KIND_TEMPLATES.values()} == set(KINDS) - {"processors"}
    assert set(PACKAGES) == set(KIND_TEMPLATES)


def test_the_package_layout_and_entry_point(scaffolded):
    package = scaffolded.root / "my-head"
    assert scaffolded.files["my-head"] == ["README.md", "my_head/__init__.py", "my_head/head.py", "pyproject.toml",
                                           "tests/test_my_head.py"]
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points."vla.heads"]\nMyHead = "my_head.head:MyHead"' in pyproject
    backbone = (scaffolded.root / "my-vlm-backbone" / "pyproject.toml").read_text()
    entry = 'MyVlmBackbone = "my_vlm_backbone.backbone:MyVlmBackbone"'
    assert f'[project.entry-points."vla.vlm_backbones"]\n{entry}' in backbone
    sources = "".join((scaffolded.root / n / f).read_text() for n, fs in scaffolded.files.items() for f in fs)
    assert "NotImplementedError" not in sources and "TODO" not in sources


def test_the_generated_tests_pass(scaffolded):
    """Each package's own tests, run with pytest as its author would (one pytest process for all)."""
    report = scaffolded.root / "report.xml"
    tests = [str(scaffolded.root / name / "tests") for name in PACKAGES.values()]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
         f"--junitxml={report}", *tests],
        capture_output=True, text=True, env=_env_with(scaffolded.site), cwd=scaffolded.root, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed: dict[str, int] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        assert not list(case), f"{case.get('classname')}.{case.get('name')} did not pass"  # failure/skip/error
        module = case.get("classname", "").rsplit(".", 1)[-1]
        passed[module] = passed.get(module, 0) + 1
    for name in PACKAGES.values():
        assert passed.get(f"test_{name.replace('-', '_')}", 0) >= 4, (name, passed)


def test_generated_code_is_ruff_clean(scaffolded):
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    for name in PACKAGES.values():  # each with its own pyproject's ruff settings
        result = subprocess.run([ruff, "check", "--no-cache", "."], capture_output=True, text=True,
                                cwd=scaffolded.root / name)
        assert result.returncode == 0, f"{name}:\n{result.stdout}"


def test_list_components_shows_every_generated_component(scaffolded):
    result = subprocess.run([sys.executable, "-m", "vla_core.cli", "list-components", "--json"],
                            capture_output=True, text=True, env=_env_with(scaffolded.site), timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {(r["name"], r["kind"]): r for r in json.loads(result.stdout)}
    for kind, name in PACKAGES.items():
        class_name = "".join(w.capitalize() for w in name.split("-"))
        row = rows[(class_name, KIND_TEMPLATES[kind].registry_kind)]
        assert row["package"] == name, row


def test_a_llava_vla_with_the_generated_head_trains_two_steps(installed, register_component, tmp_path):
    register_synthetic(register_component)
    config = run_config(tmp_path, steps=2, save_every=2)
    config["model"]["vla_head"] = {"type": "MyHead", "input_dim": 32, "state_dim": 4, "action_dim": 3,
                                   "chunk_size": 4, "hidden_dim": 32}
    _, result = train(config)
    _assert_trained(tmp_path, result)
    assert type(vla_core.load_pretrained(result.last_checkpoint).vla_head).__name__ == "MyHead"


def test_a_llava_vla_with_the_generated_vlm_backbone_trains_two_steps(installed, register_component, tmp_path):
    register_synthetic(register_component)
    config = run_config(tmp_path, steps=2, save_every=2)
    model = config["model"]
    for part in ("vision_backbone", "projector", "llm_backbone"):
        del model[part]
    # SyntheticProcessor: 16 px images, word ids below 64; the head reads the backbone's 32-wide features.
    model["vlm_backbone"] = {"type": "MyVlmBackbone", "vocab_size": 64, "hidden_size": 32, "num_layers": 1,
                             "num_heads": 2, "image_size": [16, 16], "patch_size": 8}
    _, result = train(config)
    _assert_trained(tmp_path, result)
    assert type(vla_core.load_pretrained(result.last_checkpoint).vlm_backbone).__name__ == "MyVlmBackbone"


def _assert_trained(output_dir, result) -> None:
    records = read_metrics(output_dir)
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["loss"] == r["loss"] and r["grad_norm"] > 0 for r in records), records  # finite, learning
    assert result.last_checkpoint == output_dir / "checkpoints/step-2"


def test_an_existing_directory_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "my-head").mkdir()
    (tmp_path / "my-head" / "notes.txt").write_text("mine")
    assert vla_cli("plugin", "new", "my-head", "--kind", "head", "--dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "already exists" in err and "never overwrites" in err
    assert [p.name for p in (tmp_path / "my-head").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("my head", "head", "is not a valid package name"),
        ("my-head-", "head", "is not a valid package name"),
        ("vla-core", "head", "reserved for vla itself"),
        ("VLA_Core", "head", "reserved for vla itself"),
        ("2fast", "head", "Python cannot import"),
        ("class", "head", "Python cannot import"),
        ("json", "head", "a module of that name already exists"),
        ("vla-heads-flow", "head", "already installed"),
        ("flow-matching-head", "head", "already provided by vla-heads-flow"),
        ("my-head", "policy", "is not a component kind"),
    ],
)
def test_invalid_names_and_kinds_are_refused_with_the_reason(name, kind, reason, tmp_path, capsys):
    assert vla_cli("plugin", "new", name, "--kind", kind, "--dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and reason in err, err
    assert len(err.strip().splitlines()) == 1  # one paragraph
    assert list(tmp_path.iterdir()) == []  # nothing written
