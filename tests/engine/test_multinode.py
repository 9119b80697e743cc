"""Multi-node training through `vla train --nnodes 2 --node-rank R --master-addr --master-port`:
two launches on 127.0.0.1 (one process each) train like one node with two processes, with
FSDP over both nodes and with HSDP (replicated across the nodes, sharded within)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from engine_fixtures import lerobot_run_config, script_env, write_config

from vla_core.engine.metrics import read_metrics
from vla_core.models.weights import load_state_dict

SETTINGS = {"steps": 3, "save_every": 3, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _vla_train(config_path, *flags):
    return [sys.executable, "-m", "vla_core.cli", "train", str(config_path), *flags]


def _run_nodes(config_path, port):
    """Node 0 and node 1, started as a user would start them on two machines."""
    nodes = [
        subprocess.Popen(_vla_train(config_path, "--nnodes", "2", "--node-rank", str(rank), "--master-addr",
                                    "127.0.0.1", "--master-port", str(port)),
                         env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=400) for node in nodes]
    for node, (_, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, stderr[-4000:]
    return outputs


@pytest.fixture(scope="module")
def one_node_run(lerobot_root, tmp_path_factory):
    """`vla train --nproc 2` on one node: what both multi-node layouts are compared with."""
    tmp_path = tmp_path_factory.mktemp("one-node")
    single = write_config(tmp_path / "single.json", lerobot_run_config(tmp_path / "single", lerobot_root, **SETTINGS))
    done = subprocess.run(_vla_train(single, "--nproc", "2"), env=script_env(), capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return tmp_path / "single"


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["fsdp", "hsdp"])
def test_two_nodes_train_like_one_node_with_two_processes(one_node_run, lerobot_root, tmp_path, sharding):
    nodes = write_config(tmp_path / "nodes.json", lerobot_run_config(tmp_path / "nodes", lerobot_root,
                                                                     sharding=sharding, **SETTINGS))
    (_, node0_err), _ = _run_nodes(nodes, _free_port())
    assert "2 processes" in node0_err  # rank 0 (on node 0) reports the run over both nodes

    one, two = read_metrics(one_node_run), read_metrics(tmp_path / "nodes")
    assert [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(one, two, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (one, two)
    expected, got = load_state_dict(one_node_run / "checkpoints/step-3"), load_state_dict(
        tmp_path / "nodes/checkpoints/step-3")
    assert expected.keys() == got.keys()
    for name in expected:
        if not name.endswith("k_proj.bias"):  # no true gradient: see test_fsdp.py
            torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=0, msg=name)
