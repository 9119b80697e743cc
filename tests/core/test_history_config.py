"""`vla config validate` time: observation history in the data exactly when the head reads it."""

from __future__ import annotations

from typing import Any

import pytest

from vla_core.cli.component_info import describe_component
from vla_core.config.run import validate_run_config
from vla_core.errors import ConfigError
from vla_core.models.mlp_action_head import MLPActionHead
from vla_core.testing import tiny_vla_spec

HISTORY = {"observation.images.top": [-0.2, -0.1, 0.0], "observation.state": [-0.2, -0.1, 0.0]}


class WindowHead(MLPActionHead):
    """A head that declares it reads a window of frames.

    Args:
        window_size: frames per window.
    """

    supports_history = True

    def __init__(self, window_size: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_size = window_size


def config(head: dict[str, Any], delta: dict[str, list[float]] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "LeRobotDataset", "root": "unused", "chunk_size": 4}
    if delta is not None:
        data["delta_timestamps"] = delta
    return {"model": tiny_vla_spec(head={**tiny_vla_spec()["vla_head"], **head}), "data": data}


def test_history_for_a_one_frame_head_names_both_paths():
    with pytest.raises(ConfigError) as error:
        validate_run_config(config({}, HISTORY))
    message = str(error.value)
    assert message.startswith("model.vla_head.type: MLPActionHead reads one frame")
    assert "3 frames of observation history (data.delta_timestamps" in message
    validate_run_config(config({}, {"action": [0.0, 0.1, 0.2, 0.3]}))  # an action chunk is not history


def test_a_window_head_without_history_or_with_another_length(register_component):
    register_component("heads", "WindowHead", WindowHead)
    head = {"type": "WindowHead"}
    with pytest.raises(ConfigError, match=r"^data.delta_timestamps: model.vla_head \(WindowHead\) reads a window"):
        validate_run_config(config(head, None))
    with pytest.raises(ConfigError, match=r"^model.vla_head.window_size: .* is 4 but data.delta_timestamps gives 3"):
        validate_run_config(config({**head, "window_size": 4}, HISTORY))
    resolved = validate_run_config(config(head, HISTORY))
    assert resolved.model["vla_head"]["window_size"] == 3
    validate_run_config(config({**head, "window_size": 1}, None))  # a window of one needs no history


def test_vla_info_shows_the_history_capability(register_component):
    register_component("heads", "WindowHead", WindowHead)
    assert describe_component("WindowHead")[0]["capabilities"]["supports_history"] is True
    assert describe_component("MLPActionHead")[0]["capabilities"] == {"supports_history": False}
    assert describe_component("LlavaVLA")[0]["capabilities"]["supports_history"] is True
