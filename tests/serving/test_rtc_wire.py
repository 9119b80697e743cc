"""The optional `rtc` entry of a request: checked field by field, refused by a model without guided sampling."""

from __future__ import annotations

import numpy as np
import pytest
from serving_fixtures import ACTION_DIM, CHUNK, observation

from vla_core.rtc import RTCPrefix
from vla_core.serving.checks import ObservationError
from vla_core.serving.client import PolicyClient, PolicyServerError
from vla_core.serving.rtc_wire import decode_prefix, encode_prefix


def test_a_prefix_survives_the_round_trip() -> None:
    prefix = RTCPrefix(np.arange(6, dtype=np.float32).reshape(2, 3), inference_delay=1, prefix_attention_horizon=2,
                       prefix_attention_schedule="linear", max_guidance_weight=2.5)
    back = decode_prefix(encode_prefix(prefix), action_dim=3, chunk_size=4)
    assert back.actions.tolist() == prefix.actions.tolist()
    assert (back.inference_delay, back.prefix_attention_horizon, back.prefix_attention_schedule,
            back.max_guidance_weight) == (1, 2, "linear", 2.5)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([1, 2], "must be a map"),
        ({"actions": np.zeros((2, 3), np.float32)}, "inference_delay required"),
        ({"actions": np.zeros((2, 3), np.float32), "inference_delay": 1, "extra": 1}, "takes"),
        ({"actions": np.zeros((2, 4), np.float32), "inference_delay": 1}, r"must be \(L <= 4, 3\)"),
        ({"actions": np.zeros((5, 3), np.float32), "inference_delay": 1}, r"must be \(L <= 4, 3\)"),
        ({"actions": np.full((2, 3), np.nan, np.float32), "inference_delay": 1}, "NaN or inf"),
        ({"actions": np.zeros((2, 3), np.int64), "inference_delay": 1}, "float"),
        ({"actions": np.zeros((2, 3), np.float32), "inference_delay": 9}, "inference_delay' must be an integer"),
        ({"actions": np.zeros((2, 3), np.float32), "inference_delay": 1, "prefix_attention_schedule": "cos"}, "one of"),
        ({"actions": np.zeros((2, 3), np.float32), "inference_delay": 1, "max_guidance_weight": -1.0}, ">= 0"),
    ],
)
def test_bad_prefixes_are_refused_naming_the_field(value: object, match: str) -> None:
    with pytest.raises(ObservationError, match=match):
        decode_prefix(value, action_dim=3, chunk_size=4)


def test_a_model_without_guided_sampling_refuses_rtc_and_keeps_serving(server) -> None:
    with PolicyClient(server.url) as client:
        assert client.supports_rtc is False
        prefix = RTCPrefix(np.zeros((CHUNK, ACTION_DIM), np.float32), inference_delay=1, prefix_attention_horizon=2)
        with pytest.raises(PolicyServerError, match="head MLPActionHead\\) cannot sample with an 'rtc' prefix"):
            client.act(observation(), rtc=prefix)
    with PolicyClient(server.url) as client:
        assert client.act(observation()).shape == (CHUNK, ACTION_DIM)
