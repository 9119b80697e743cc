"""The vla-eval harness from PyPI (its orchestrator, runner, `Connection` and message codec) drives
a vla checkpoint served by `VLAEvalModelServer` over loopback, in process and as `vla serve
--protocol vla-eval`: actions equal in-process `Policy.act`, each episode resets the policy,
observations that do not fit are refused with the reason, and the server keeps serving."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import torch
from served import vla_eval_site
from serving_fixtures import ACTION_DIM, CHUNK, noise, observation

from vla_core.engine.policy import Policy

EXECUTE = 2  # actions executed per chunk of CHUNK = 4


@pytest.fixture(scope="session")
def vla_eval(request: pytest.FixtureRequest) -> Path:
    """The PyPI harness importable here (appended: vla's own packages keep precedence)."""
    site = vla_eval_site(request.config.cache.mkdir("vla-serving-venvs"))
    if str(site) not in sys.path:
        sys.path.append(str(site))
    return site


def eval_config(episodes: int = 2, steps: int = 5, **params: Any) -> dict[str, Any]:
    """A harness eval config running harness_benchmark.LiberoLikeBenchmark in this process."""
    return {
        "server": {"timeout": 30},
        "benchmarks": [{"benchmark": "harness_benchmark:LiberoLikeBenchmark", "episodes_per_task": episodes,
                        "params": {"steps": steps, **params}}],
    }


def run_harness(
    url: str, config: dict[str, Any], output_dir: Path
) -> tuple[dict[str, Any], list[tuple[int, int, np.ndarray]]]:
    """The harness's `vla_eval.api.run` (no Docker, no recording; progress files in `output_dir`)
    -> (its result, the executed actions)."""
    import harness_benchmark
    from vla_eval.api import run

    harness_benchmark.EXECUTED.clear()
    (result,) = run(config, server_url=url, output_dir=output_dir, docker=False, no_save=True)
    return result, list(harness_benchmark.EXECUTED)


def episodes_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [episode for task in result["tasks"] for episode in task["episodes"]]


def errors_of(result: dict[str, Any]) -> int:
    return result.get("num_errors", 0)


class Spy:
    """Counts a policy's resets and records the noise of each inference."""

    def __init__(self, policy: Policy) -> None:
        self.resets, self.noises = 0, []
        reset, act = policy.reset, policy.act

        def counted_reset() -> None:
            self.resets += 1
            reset()

        def recorded_act(obs: dict[str, Any], noise: torch.Tensor | None = None) -> np.ndarray:
            self.noises.append(noise)
            return act(obs, noise=noise)

        policy.reset, policy.act = counted_reset, recorded_act  # type: ignore[method-assign]


def test_the_harness_runs_two_episodes_and_executes_the_in_process_actions(vla_eval, checkpoint, policy, tmp_path):
    from vla_eval.api import serve_background

    from vla_core.serving.vla_eval_server import VLAEvalModelServer

    served_policy = Policy.from_pretrained(checkpoint)
    spy = Spy(served_policy)
    server = VLAEvalModelServer.from_policy(served_policy, execute_steps=EXECUTE)
    with serve_background(server) as handle:
        assert handle.url.startswith("ws://127.0.0.1:")
        result, executed = run_harness(handle.url, eval_config(episodes=2, steps=5), tmp_path)

    assert errors_of(result) == 0, episodes_of(result)
    assert [(e, s) for e, s, _ in executed] == [(e, s) for e in range(2) for s in range(5)]
    for episode, step, action in executed:
        # A new chunk at steps 0, 2, 4 from that step's observation; the steps between execute its rest.
        seed = 100 * episode + step - step % EXECUTE
        want = policy.act(observation(seed), noise=torch.from_numpy(noise(seed)))
        assert action.shape == (ACTION_DIM,) and action.dtype == np.float32
        np.testing.assert_array_equal(action, want[step % EXECUTE])
    assert spy.resets == 2  # one per EPISODE_START
    assert len(spy.noises) == 6  # 3 chunks per episode, not one inference per step
    for i, sent in enumerate(spy.noises):
        np.testing.assert_array_equal(sent.numpy(), noise(100 * (i // 3) + EXECUTE * (i % 3)))


def test_hello_asks_for_the_wrist_frame_and_state_and_unmapped_keys_are_ignored(vla_eval, policy, caplog):
    import harness_benchmark
    from vla_eval.api import serve_background
    from vla_eval.connection import Connection

    from vla_core.serving.vla_eval_server import VLAEvalModelServer

    async def session(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
        async with Connection(url, timeout=30, max_retries=1) as connection:
            await connection.start_episode({"task": {"name": "open the drawer"}})
            # LIBERO's layout + SimplerEnv's task_name: keys no checkpoint input reads are ignored.
            sent = {**harness_benchmark.harness_observation(7), "task_name": "widowx_stack_cube"}
            return connection.server_info, await connection.act(sent)

    caplog.set_level(logging.INFO, logger="vla_core.serving.vla_eval_server")
    server = VLAEvalModelServer.from_policy(policy)
    with serve_background(server) as handle:
        info, reply = anyio.run(session, handle.url)
    assert "ignoring harness keys ['controller_states', 'task_name']" in caplog.text
    assert info["model_server"] == "VLAEvalModelServer"
    assert info["observation_params"] == {"send_state": True, "send_wrist_image": True}
    want = policy.act(observation(7), noise=torch.from_numpy(noise(7)))
    np.testing.assert_array_equal(reply["actions"], want[0])
    assert server.chunk_size == CHUNK  # execute_steps None: the whole chunk


def test_an_observation_that_does_not_fit_fails_its_episode_with_the_reason_and_serving_goes_on(
    vla_eval, policy, tmp_path
):
    from vla_eval.api import serve_background

    from vla_core.serving.vla_eval_server import VLAEvalModelServer

    server = VLAEvalModelServer.from_policy(policy)
    with serve_background(server) as handle:
        bad, executed = run_harness(handle.url, eval_config(episodes=1, steps=2, camera="front"), tmp_path)
        good, _ = run_harness(handle.url, eval_config(episodes=1, steps=2), tmp_path)
    (episode,) = episodes_of(bad)
    detail = episode["failure_detail"]
    assert errors_of(bad) == 1 and executed == []
    assert "missing 'observation.images.top'" in detail and "images/agentview" in detail  # what to send
    assert "'images/front'" in detail and "--key" in detail  # what arrived, and how to map it
    assert errors_of(good) == 0


def test_a_second_session_on_a_head_with_history_is_warned_about(vla_eval, policy, monkeypatch, caplog):
    from vla_core.serving.vla_eval_server import VLAEvalModelServer

    server = VLAEvalModelServer.from_policy(policy)
    server._start_episode("shard-0")
    server._start_episode("shard-0")
    server._start_episode("shard-1")
    assert "one shard per server" not in caplog.text  # a stateless head: sessions do not interfere
    monkeypatch.setattr(policy.vla.vla_head, "supports_history", True, raising=False)
    server._start_episode("shard-2")
    assert "one shard per server" in caplog.text


def test_nan_state_is_refused_and_never_reaches_the_harness_as_an_action(vla_eval, policy):
    import harness_benchmark
    from vla_eval.api import serve_background
    from vla_eval.connection import Connection

    from vla_core.serving.vla_eval_server import VLAEvalModelServer

    async def session(url: str) -> str:
        async with Connection(url, timeout=30, max_retries=1) as connection:
            await connection.start_episode({"task": {}})
            sent = harness_benchmark.harness_observation(1)
            sent["states"][3] = np.nan
            with pytest.raises(RuntimeError) as refused:
                await connection.act(sent)
            return str(refused.value)

    with serve_background(VLAEvalModelServer.from_policy(policy)) as handle:
        message = anyio.run(session, handle.url)
    assert "Server error" in message and "NaN or inf at index [3]" in message


def test_vla_serve_protocol_vla_eval_serves_the_harness_and_stops_on_sigterm(
    vla_eval, vla_main, checkpoint, policy, monkeypatch, tmp_path
):
    """The `vla serve` command in this process (a subprocess would spend its time importing torch):
    once it listens, a thread runs the harness against it, then sends this process SIGTERM."""
    from vla_core.serving import vla_eval_server

    outcome: dict[str, Any] = {}
    serve = vla_eval_server.serve_vla_eval

    def serve_and_drive(server: Any, host: str, port: int, on_ready: Any) -> None:
        def drive(url: str) -> None:
            try:
                outcome["result"], outcome["executed"] = run_harness(url, eval_config(episodes=1, steps=3), tmp_path)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # the server's handler stops it

        def ready(url: str) -> None:
            on_ready(url)
            outcome["url"] = url
            threading.Thread(target=drive, args=(url,), daemon=True).start()

        serve(server, host, port, on_ready=ready)

    monkeypatch.setattr(vla_eval_server, "serve_vla_eval", serve_and_drive)
    code, _, log = vla_main("serve", str(checkpoint), "--port", "0", "--protocol", "vla-eval", "-k", str(EXECUTE))
    assert code == 0 and "stopped" in log, log
    assert outcome["url"].startswith("ws://127.0.0.1:") and f"to vla-eval at {outcome['url']}" in log
    assert "'images/agentview', 'images/primary', 'images/rgb_static']" in log  # the scene camera's keys
    assert errors_of(outcome["result"]) == 0, episodes_of(outcome["result"])
    assert [step for _, step, _ in outcome["executed"]] == [0, 1, 2]
    for _, step, action in outcome["executed"]:
        seed = step - step % EXECUTE
        want = policy.act(observation(seed), noise=torch.from_numpy(noise(seed)))[step % EXECUTE]
        np.testing.assert_array_equal(action, want)


class SlowPolicy:
    """`policy` taking `seconds` longer per inference, saying when one starts and ends."""

    def __init__(self, policy: Policy, seconds: float) -> None:
        self.policy, self.seconds = policy, seconds
        self.processor, self.vla = policy.processor, policy.vla
        self.started, self.finished = threading.Event(), threading.Event()

    def reset(self) -> None:
        self.policy.reset()

    def act(self, obs: dict[str, Any], noise: torch.Tensor | None = None) -> np.ndarray:
        self.started.set()
        time.sleep(self.seconds)
        actions = self.policy.act(obs, noise=noise)
        self.finished.set()
        return actions


def test_sigterm_during_an_inference_lets_it_finish_closes_the_connection_and_returns(vla_eval, policy):
    import harness_benchmark
    from vla_eval.connection import Connection

    from vla_core.serving.vla_eval_server import VLAEvalModelServer, serve_vla_eval

    slow = SlowPolicy(policy, seconds=1.0)
    outcome: list[str] = []

    async def harness(url: str) -> None:
        async with Connection(url, timeout=30, max_retries=1) as connection:
            await connection.start_episode({"task": {}})
            try:
                await connection.act(harness_benchmark.harness_observation(0))
                outcome.append("reply")
            except Exception as exc:
                outcome.append(type(exc).__name__)

    def drive(url: str) -> None:
        threading.Thread(target=lambda: slow.started.wait(30) and os.kill(os.getpid(), signal.SIGTERM)).start()
        anyio.run(harness, url)

    def ready(url: str) -> None:
        threading.Thread(target=drive, args=(url,), daemon=True).start()

    serve_vla_eval(VLAEvalModelServer.from_policy(slow), "127.0.0.1", 0, on_ready=ready)
    assert slow.finished.is_set()  # the model thread was not cut off mid-inference
    deadline = time.monotonic() + 10
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcome and outcome[0].startswith("ConnectionClosed"), outcome  # closed, not left hanging


def test_a_port_taken_while_the_model_loaded_raises_its_oserror(vla_eval, policy):
    from vla_core.serving.vla_eval_server import VLAEvalModelServer, serve_vla_eval

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="address already in use"):  # not an ExceptionGroup: the CLI says it
            serve_vla_eval(VLAEvalModelServer.from_policy(policy), "127.0.0.1", taken.getsockname()[1])


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--protocol", "vla-eval", "--api-key", "k"], "--api-key cannot be used with --protocol vla-eval"),
        (["--protocol", "vla-eval", "--idle-timeout", "5"], "--idle-timeout cannot be used"),
        (["--execute-steps", "2"], "--execute-steps applies to --protocol vla-eval"),
        (["--protocol", "grpc"], "--protocol must be openpi or vla-eval"),
        (["--protocol", "vla-eval", "--execute-steps", "5"], "--execute-steps 5 is outside 1..4"),
    ],
)
def test_vla_serve_refuses_options_that_do_not_fit_the_protocol(vla_eval, vla_main, checkpoint, options, said):
    code, _, err = vla_main("serve", str(checkpoint), "--port", "0", *options)
    assert code == 2 and said in " ".join(err.split()), err


def test_without_the_extra_the_error_says_how_to_install_it(monkeypatch):
    from vla_core.errors import ConfigError

    for name in ["vla_eval", *(m for m in sys.modules if m.startswith("vla_eval."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.delitem(sys.modules, "vla_core.serving.vla_eval_server", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'vla-core\[vla-eval\]'"):
        import vla_core.serving.vla_eval_server  # noqa: F401
