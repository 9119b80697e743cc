"""`vla serve` in a subprocess: the PyPI openpi-client gets in-process actions; SIGTERM/Ctrl-C exit cleanly."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from served import Served, openpi_client_python
from serving_fixtures import noise, observation, openpi_observation
from websockets.exceptions import ConnectionClosed

from vla_core.serving.client import PolicyClient, PolicyServerError

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def openpi_python(request: pytest.FixtureRequest) -> Path:
    return openpi_client_python(request.config.cache.mkdir("vla-serving-venvs"))


def test_openpi_client_from_pypi_gets_the_in_process_actions(checkpoint, policy, openpi_python, tmp_path):
    arrays = {}
    for i in range(3):
        for key, value in {**openpi_observation(i), "noise": noise(i)}.items():
            arrays[f"obs{i}/{key}"] = np.asarray(value)
    np.savez(tmp_path / "obs.npz", **arrays)
    served = Served(checkpoint)
    try:
        robot = subprocess.run(
            [str(openpi_python), str(HERE / "openpi_robot.py"), str(served.port), str(tmp_path / "obs.npz"),
             str(tmp_path)], capture_output=True, text=True, timeout=120,
        )
        assert robot.returncode == 0, robot.stderr
        assert robot.stdout.startswith("numpy 1.")  # the robot's own numpy, not ours
        metadata = (tmp_path / "metadata.txt").read_text()
        assert "'keys'" in metadata and "['observation.images.top', 'observation.images.wrist']" in metadata
        for i in range(3):
            want = policy.act(observation(i), noise=torch.from_numpy(noise(i)))
            np.testing.assert_array_equal(np.load(tmp_path / f"actions{i}.npy", allow_pickle=False), want)
    finally:
        served.process.send_signal(signal.SIGTERM)
        code, log = served.finish()
    assert code == 0, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_finishes_in_flight_requests_and_exits_0(checkpoint, signum):
    served = Served(checkpoint)
    outcomes: list[str] = []

    def robot() -> None:
        with PolicyClient(served.url, timeout=60) as client:
            while True:
                try:
                    client.act(observation())
                except PolicyServerError as exc:
                    closed = isinstance(exc.__context__, ConnectionClosed) or "closed the connection" in str(exc)
                    outcomes.append("clean close" if closed and "1001" in str(exc) else f"error: {exc}")
                    return
                outcomes.append("reply")

    robots = [threading.Thread(target=robot) for _ in range(4)]
    for thread in robots:
        thread.start()
    time.sleep(1.0)  # requests in flight
    served.process.send_signal(signum)
    code, log = served.finish()
    for thread in robots:
        thread.join(60)
    assert code == 0, log
    assert "terminate called" not in log and "Traceback" not in log, log
    assert "stopped" in log
    assert outcomes.count("clean close") == 4 and outcomes.count("reply") > 4, outcomes
