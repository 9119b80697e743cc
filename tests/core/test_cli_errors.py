"""One place turns exceptions into messages: exactly one `Error:` paragraph, exit code 2 for
bad input and 1 for the environment, a traceback only with --debug; and the serve/predict
flags that used to end in a traceback (port, host, device)."""

from __future__ import annotations

import errno
import socket

import pytest

from vla_core.cli import error_message
from vla_core.errors import CheckpointWriteError, ConfigError, ResourceError


def _one_error(err: str) -> str:
    assert "Traceback" not in err, err
    assert err.count("Error:") == 1, err
    return next(line for line in err.splitlines() if line.startswith("Error:"))


def test_error_message_kinds_and_exit_codes():
    assert error_message(ConfigError("Error: error: is 3.")) == ("is 3.", 2)
    assert error_message(ConfigError("Error:  bad value\n\n  use 3")) == ("bad value\n  use 3", 2)
    assert error_message(ResourceError("no GPU"))[1] == 1
    assert error_message(CheckpointWriteError("disk full"))[1] == 1  # still a CheckpointError, but environment
    message, code = error_message(PermissionError(errno.EACCES, "Permission denied", "/data/x.parquet"))
    assert code == 1 and message.startswith("cannot use '/data/x.parquet': Permission denied.")
    assert error_message(FileNotFoundError(errno.ENOENT, "No such file or directory", "cfg.yaml"))[1] == 2
    message, code = error_message(ZeroDivisionError("division by zero"))
    assert code == 1 and "unexpected ZeroDivisionError (division by zero)" in message and "--debug" in message


def test_unexpected_exception_is_one_paragraph_and_debug_shows_the_traceback(vla_main, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setenv("VLA_DEBUG", "0")  # --debug sets it to 1 for the process; teardown restores the original
    monkeypatch.setattr("vla_core.config.loading.load_config", broken)
    code, _, err = vla_main("build", "nowhere.yaml")
    assert code == 1 and "unexpected KeyError" in _one_error(err), err
    with pytest.raises(KeyError):
        vla_main("--debug", "build", "nowhere.yaml")
    monkeypatch.setenv("VLA_DEBUG", "1")
    with pytest.raises(KeyError):
        vla_main("build", "nowhere.yaml")


def test_only_rank_zero_prints_a_user_error_under_torchrun(vla_main, monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    code, _, err = vla_main("build", str(tmp_path / "missing.yaml"))
    assert code == 2 and err == ""
    monkeypatch.setenv("RANK", "0")
    code, _, err = vla_main("build", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in _one_error(err)


@pytest.fixture
def listening_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        yield server.getsockname()[1]


def test_serve_flags_fail_before_loading(vla_main, tmp_path, listening_port):
    checkpoint = str(tmp_path / "never-read")
    cases = [
        (["--port", "99999"], 2, "--port 99999 is not a TCP port"),
        (["--port", str(listening_port)], 1, f"--port {listening_port} is already in use on 127.0.0.1"),
        (["--host", "10.255.255.1"], 2, "--host 10.255.255.1 is not an address of this machine"),
        (["--host", "::1"], 2, "--host '::1' is IPv6 only, and vla serve listens on IPv4"),
        (["--host", "no-such-host.invalid"], 2, "--host 'no-such-host.invalid' is not an address or a name"),
    ]
    for flags, expected_code, expected in cases:
        code, _, err = vla_main("serve", checkpoint, *flags)
        assert (code, expected in _one_error(err)) == (expected_code, True), (flags, err)


@pytest.mark.parametrize("command", ["serve", "predict"])
def test_device_that_this_machine_lacks(command, vla_main, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = vla_main(command, str(tmp_path / "never-read"), "--device", "cuda")
    assert code == 1 and "--device cuda: CUDA is not available here" in _one_error(err)
    code, _, err = vla_main(command, str(tmp_path / "never-read"), "--device", "gpu0")
    assert code == 2 and "--device 'gpu0' is not a device name" in _one_error(err)
