"""`vla serve` as a robot sees it: a subprocess on a free loopback port, an openpi-client venv, and
the vla-eval harness's package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

OPENPI_CLIENT = "openpi-client==0.1.2"
# openpi-client 0.1.2 imports typing_extensions without declaring it: a robot installs it too.
OPENPI_REQUIREMENTS = (OPENPI_CLIENT, "typing_extensions")
# The harness and the one dependency of its protocol, server and orchestrator code that vla's
# environment lacks (the rest: anyio, websockets, msgpack, numpy, pillow, pydantic, are there).
# Not its video/CLI dependencies (imageio-ffmpeg alone is a 68 MB download).
VLA_EVAL_REQUIREMENTS = ("vla-eval==0.8.0", "lazyregistry==0.4.0")


class Served:
    """`vla serve CHECKPOINT --port 0 ...` running; `port` once it listens."""

    def __init__(self, checkpoint: Path, *options: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "COLUMNS": "400"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vla_core.cli", "serve", str(checkpoint), "--port", "0", *options],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + 120
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError(f"vla serve exited ({self.process.wait()}): {''.join(self.lines)}")
            self.lines.append(line)
            found = re.search(r"at ws://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                return
        self.process.kill()
        raise AssertionError(f"vla serve did not start within 120 s: {''.join(self.lines)}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the exit -> (exit code, the rest of stderr)."""
        assert self.process.stderr is not None
        rest = self.process.stderr.read()
        return self.process.wait(timeout), "".join(self.lines) + rest


def openpi_client_python(cache: Path) -> Path:
    """The python of a venv holding the PyPI openpi-client and its own dependencies (numpy < 2),
    built once into `cache` (pip needs the network the first time)."""
    target = cache / "openpi-client-0.1.2"
    python = target / "bin" / "python"
    if python.exists():
        return python
    building = cache / f"building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    venv.create(building, with_pip=True)
    subprocess.run(
        [str(building / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         *OPENPI_REQUIREMENTS],
        check=True, timeout=600, env={k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"},
    )
    try:
        building.rename(target)  # atomic: a concurrent worker either wins or uses this one
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return python


def vla_eval_site(cache: Path) -> Path:
    """A folder holding the PyPI vla-eval harness (without the dependencies vla already has), for
    sys.path / PYTHONPATH; installed once into `cache` (pip needs the network the first time)."""
    target = cache / "vla-eval-0.8.0"
    if (target / "vla_eval" / "model_servers" / "predict.py").exists():
        return target
    building = cache / f"building-vla-eval-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-compile",
         "--target", str(building), *VLA_EVAL_REQUIREMENTS],
        check=True, timeout=600, env={k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"},
    )
    try:
        building.rename(target)  # atomic: a concurrent worker either wins or uses this one
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return target
