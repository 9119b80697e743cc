"""The environment `make install` / `make demo` leaves holds what ships, not the test plugins:
they exist for the test run only (tests/conftest.py puts them on the path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TEST_ONLY_COMPONENTS = {"BrokenHead", "GhostHead", "NeedsMissingDependencyHead", "AttentionPoolingHead"}


def _run_without_test_plugins(site: Path, *args: str) -> subprocess.CompletedProcess:
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(site)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([sys.executable, "-m", "vla_core.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_user_environment_lists_only_shipped_components(test_plugins_site):
    result = _run_without_test_plugins(test_plugins_site, "list-components", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    names = {row["name"] for row in rows}
    assert {"LlavaVLA", "MLPActionHead", "FlowMatchingHead", "PI0FlowMatching", "MetaWorld"} <= names
    assert not names & TEST_ONLY_COMPONENTS
    assert not {row["package"] for row in rows} & {"vla-broken", "vla-example-head"}


def test_user_environment_help_has_no_test_commands(test_plugins_site):
    result = _run_without_test_plugins(test_plugins_site, "--help")
    assert result.returncode == 0, result.stderr
    assert "list-components" in result.stdout and "train" in result.stdout
    assert "example-head" not in result.stdout


def test_the_test_run_does_see_them(run_vla):
    # The other side: inside the test run the third-party plugins are installed (as a user
    # would install them), which the registry and hook tests rely on.
    rows = json.loads(run_vla("list-components", "--json").stdout)
    assert {row["name"] for row in rows} >= TEST_ONLY_COMPONENTS
