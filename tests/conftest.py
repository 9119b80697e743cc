"""Shared fixtures for the core tests (vla_core.testing's fixtures are loaded via pytest11).

The test-only plugins under tests/plugins/ (a third-party-style head, deliberately broken
entries) are installed for the test run only: `pip install --target build/test-plugins`
(rebuilt when their sources change), put on sys.path and PYTHONPATH for this process and
the CLIs it starts. The user's environment (`make demo`, `vla list-components`) never
sees them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_PLUGINS = sorted(p.parent for p in (REPO / "tests/plugins").glob("*/pyproject.toml"))
TEST_PLUGINS_SITE = REPO / "build/test-plugins"


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for project in TEST_PLUGINS:
        for path in sorted(project.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and "/tests/" not in f"/{path.relative_to(project)}":
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def install_test_plugins() -> Path:
    """Install tests/plugins/* into TEST_PLUGINS_SITE unless it already holds these sources.

    Under pytest-xdist every worker loads this conftest: a file lock makes one install and the
    others wait for it, then find the stamp (no worker deletes the folder another one reads).
    """
    TEST_PLUGINS_SITE.parent.mkdir(parents=True, exist_ok=True)
    with open(TEST_PLUGINS_SITE.parent / "test-plugins.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_test_plugins_locked()


def _install_test_plugins_locked() -> Path:
    stamp = TEST_PLUGINS_SITE / ".sources-sha256"
    digest = _sources_digest()
    if stamp.is_file() and stamp.read_text() == digest:
        return TEST_PLUGINS_SITE
    staging = Path(tempfile.mkdtemp(prefix="test-plugins-", dir=TEST_PLUGINS_SITE.parent))
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
               "--target", str(staging), *map(str, TEST_PLUGINS)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"installing the test plugins failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    (staging / stamp.name).write_text(digest)
    shutil.rmtree(TEST_PLUGINS_SITE, ignore_errors=True)
    staging.rename(TEST_PLUGINS_SITE)  # complete or absent: an interrupted install is redone next run
    return TEST_PLUGINS_SITE


def _use_test_plugins() -> None:
    site = str(install_test_plugins())
    if site not in sys.path:
        sys.path.insert(0, site)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if site not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([site, *paths])
    from vla_core import registry

    registry.refresh()  # entry points read before the path was added are forgotten


_use_test_plugins()


@pytest.fixture
def test_plugins_site() -> Path:
    """Where the test-only plugins are installed for this run."""
    return TEST_PLUGINS_SITE


@pytest.fixture
def run_vla():
    """Run the `vla` CLI in a subprocess -> CompletedProcess (text output)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "vla_core.cli", *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=300,
        )

    return run


@pytest.fixture
def vla_main(capsys):
    """Run the `vla` CLI in this process -> (exit code, stdout, stderr); faster than a subprocess."""
    from vla_core.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
