"""Fixtures of the scaffold tests: one package per kind written by `vla plugin new` and
pip-installed into a temporary folder (never the user's environment), as a plugin author would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # scaffold_helpers
sys.path.insert(0, str(HERE.parent / "engine"))  # engine_fixtures: the synthetic dataset and the trainer helper

from scaffold_helpers import PACKAGES, Scaffolded, vla_cli  # noqa: E402


@pytest.fixture(scope="session")
def scaffolded(tmp_path_factory) -> Scaffolded:
    """Every kind written by `vla plugin new NAME --kind KIND --dir ROOT`, then installed with
    `pip install --no-deps --no-build-isolation --target SITE` (one pip run for all)."""
    root = tmp_path_factory.mktemp("scaffold")
    for kind, name in PACKAGES.items():
        assert vla_cli("plugin", "new", name, "--kind", kind, "--dir", str(root)) == 0, kind
    files = {name: sorted(str(p.relative_to(root / name)) for p in (root / name).rglob("*") if p.is_file())
             for name in PACKAGES.values()}
    site = root / "site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
               "--no-compile", "--disable-pip-version-check", "--target", str(site),
               *(str(root / name) for name in PACKAGES.values())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return Scaffolded(root, files, site)


@pytest.fixture
def installed(scaffolded, monkeypatch):
    """The generated packages importable and registered in this process for one test."""
    from vla_core import registry

    monkeypatch.syspath_prepend(str(scaffolded.site))
    registry.refresh()
    yield scaffolded
    monkeypatch.undo()
    registry.refresh()
    for module in [m for m in sys.modules if m.split(".")[0] in {n.replace("-", "_") for n in PACKAGES.values()}]:
        del sys.modules[module]
