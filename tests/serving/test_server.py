"""The websocket server and PolicyClient over loopback: same actions as in process, sessions, health, keys."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from serving_fixtures import make_server, noise, observation, openpi_observation

from vla_core.serving.client import PolicyClient, PolicyServerError


def test_served_actions_equal_in_process_actions(server, policy):
    assert server.host == "127.0.0.1"
    with PolicyClient(server.url) as client:
        meta = client.metadata()
        assert meta["model_type"] == "LlavaVLA" and meta["state_dim"] == 8 and meta["noise_shape"] == [4, 7]
        for seed in range(3):  # several requests over one connection
            remote = client.act(observation(seed), noise=noise(seed))
            np.testing.assert_array_equal(remote, policy.act(observation(seed), noise=torch.from_numpy(noise(seed))))
        assert remote.shape == (4, 7) and remote.dtype == np.float32 and client.last_inference_ms > 0
        reply = client.infer({**openpi_observation(0), "noise": noise(0)})  # openpi's flat keys
        np.testing.assert_array_equal(reply["actions"], policy.act(observation(0), noise=torch.from_numpy(noise(0))))
        assert reply["server_timing"]["infer_ms"] >= reply["policy_timing"]["infer_ms"] > 0
        assert reply["server_timing"]["prev_total_ms"] > 0  # the previous round, as openpi reports it


def test_health_check_on_the_same_port(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as response:
        assert response.status == 200 and response.read() == b"OK\n"


def test_sessions_sample_per_episode_noise_and_reset_the_policy(policy):
    class Recording:
        """Returns its noise; counts resets (a new connection and each reset message)."""

        processor, vla = policy.processor, policy.vla
        resets = 0

        def reset(self):
            Recording.resets += 1

        def act(self, observation, noise=None):
            return noise.numpy()

    with make_server(Recording()) as server, PolicyClient(server.url) as a, PolicyClient(server.url) as b:
        first, second = a.act(observation()), a.act(observation())
        assert not np.array_equal(first, second)  # fresh noise per request
        assert Recording.resets == 1
        a.reset()
        assert Recording.resets == 2
        episode_1 = a.act(observation())
        assert not np.array_equal(episode_1, first)  # a new episode, new noise
        np.testing.assert_array_equal(b.act(observation()), first)  # a new connection: a new session, episode 0
        assert Recording.resets == 3
        b.reset()
        np.testing.assert_array_equal(b.act(observation()), episode_1)  # episodes replay per session


def test_an_api_key_is_checked_before_the_upgrade(policy):
    with make_server(policy, api_key="s3cret") as server:
        with pytest.raises(PolicyServerError, match=r"refused the connection \(401\): this server needs the header"):
            PolicyClient(server.url, api_key="wrong").metadata()
        with pytest.raises(PolicyServerError, match=r"\(401\)"):
            PolicyClient(server.url).metadata()
        with PolicyClient(server.url, api_key="s3cret") as client:
            assert client.act(observation()).shape == (4, 7)


def test_non_finite_actions_never_leave_the_server(policy):
    class Diverged:
        processor, vla = policy.processor, policy.vla

        def act(self, observation, noise=None):
            return np.full((4, 7), np.nan, np.float32)

    with make_server(Diverged()) as server, PolicyClient(server.url) as client, pytest.raises(
        PolicyServerError, match="produced NaN or inf actions for this observation; none were sent"
    ):
        client.act(observation())


def test_replies_are_not_delayed_by_nagle(server):
    with PolicyClient(server.url) as client:
        client.metadata()
        (connection,) = server.connections
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_an_unreachable_server_is_a_clear_error():
    with pytest.raises(PolicyServerError, match=r"cannot reach the policy server at ws://127\.0\.0\.1:9 .*vla serve"):
        PolicyClient("ws://127.0.0.1:9", timeout=2).metadata()
    with pytest.raises(PolicyServerError, match="is not a ws://host:port address"):
        PolicyClient("http://127.0.0.1:8000")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("http://127.0.0.1:9/healthz", timeout=2)
