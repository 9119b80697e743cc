"""Shared fixtures for the core tests (vla_core.testing's fixtures are loaded via pytest11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
