"""Policy server and client: same actions as the policy in-process, clear errors, local by default."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch

import vla_core
from vla_core.engine.policy import Policy
from vla_core.serving.client import PolicyClient, PolicyServerError
from vla_core.serving.server import PolicyServer
from vla_core.serving.wire import decode_observation, encode_observation
from vla_core.testing import tiny_vla_spec

CAMERA = "observation.images.top"


class ScalingProcessor:
    """A minimal processor: uint8 image -> [-1, 1], words -> ids, state as is, actions x 10."""

    def __call__(self, raw: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(raw["images"][CAMERA]).permute(2, 0, 1).float() / 127.5 - 1
        tokens = torch.tensor([len(word) % 64 for word in raw["task"].split()][:6], dtype=torch.long)
        return {
            "images": image.unsqueeze(0),
            "img_masks": torch.ones(1, dtype=torch.bool),
            "lang_tokens": tokens,
            "lang_masks": torch.ones_like(tokens, dtype=torch.bool),
            "states": torch.as_tensor(raw["state"], dtype=torch.float32),
        }

    def collate(self, samples):
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}

    def unnormalize_actions(self, actions: torch.Tensor) -> np.ndarray:
        return actions.numpy() * 10


@pytest.fixture(scope="module")
def policy() -> Policy:
    torch.manual_seed(0)
    return Policy(vla_core.build_vla(tiny_vla_spec()), ScalingProcessor())


@pytest.fixture
def server(policy):
    server = PolicyServer(policy, port=0, metadata={"model_type": "LlavaVLA"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def observation(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "images": {CAMERA: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)},
        "state": rng.normal(size=4).astype(np.float32),
        "task": "open the drawer",
    }


def test_wire_round_trip():
    obs = observation()
    back = decode_observation(encode_observation(obs))
    assert back["task"] == "open the drawer"
    np.testing.assert_array_equal(back["images"][CAMERA], obs["images"][CAMERA])
    np.testing.assert_array_equal(back["state"], obs["state"])


def test_served_actions_equal_in_process_actions(server, policy):
    assert server.server_address[0] == "127.0.0.1"
    with PolicyClient(server.url) as client:
        for seed in range(3):  # several requests over one keep-alive connection
            remote = client.act(observation(seed))
            np.testing.assert_array_equal(remote, policy.act(observation(seed)))
        assert remote.shape == (4, 3) and client.last_inference_ms > 0
        assert client.metadata() == {"model_type": "LlavaVLA"}


def test_bad_requests_get_clear_errors(server):
    with PolicyClient(server.url) as client:
        bad = observation()
        del bad["state"]
        with pytest.raises(PolicyServerError, match="400: the observation has no 'state' array"):
            client.act(bad)
        np.testing.assert_array_equal(client.act(observation()).shape, (4, 3))  # still serving
    with pytest.raises(PolicyServerError, match="cannot reach the policy server"):
        PolicyClient("http://127.0.0.1:9", timeout=2).act(observation())


def test_a_malformed_content_length_is_a_clear_400(server):
    import http.client

    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.putrequest("POST", "/act")
    connection.putheader("Content-Length", "ten")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400 and b"Content-Length" in response.read()
    connection.close()


def test_noise_reaches_the_policy_for_reproducible_sampling():
    class Recording:
        """A policy that returns the noise it was given (generative heads start from it)."""

        def act(self, observation, noise=None):
            assert observation["task"] == "open the drawer" and "noise" not in observation
            return noise.numpy()

    server = PolicyServer(Recording(), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        noise = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
        with PolicyClient(server.url) as client:
            np.testing.assert_array_equal(client.act(observation(), noise=noise), noise)
    finally:
        server.shutdown()
        server.server_close()
