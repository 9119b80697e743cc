"""A process other than rank 0 that fails (a corrupt sample on rank 1) ends the whole run
promptly, and the launcher names that rank and its error."""

from __future__ import annotations

import subprocess
import time

import pytest
from engine_fixtures import run_config, script_command, script_env, write_config

TIMEOUT_S = 30


@pytest.mark.slow
def test_a_bad_sample_on_rank_one_stops_the_run_with_rank_and_error(tmp_path):
    config = run_config(tmp_path / "run", data={"type": "FailingOnRank", "fail_rank": 1}, steps=6, save_every=6,
                        collective_timeout_s=TIMEOUT_S)
    config_path = write_config(tmp_path / "config.json", config)
    started = time.monotonic()
    done = subprocess.run(script_command(config_path, "--launch", "2"), capture_output=True, text=True,
                          env=script_env(), timeout=300)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) >= 1, done.stderr[-3000:]
    message = "\n".join(error)
    assert "rank 1:" in message and "sample" in message and "is corrupt" in message, done.stderr[-3000:]
    assert "ChildFailedError" not in done.stderr  # said once, as a paragraph, not as torchrun's traceback
    # Start-up (two interpreters importing torch on a busy 2-core machine) plus at most one collective timeout.
    assert elapsed < 120 + TIMEOUT_S, elapsed
    assert not (tmp_path / "run/checkpoints/step-6").exists()
