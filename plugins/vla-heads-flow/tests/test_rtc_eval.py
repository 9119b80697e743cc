"""`vla eval --execution ... --delay-steps d` with a tiny FlowMatchingHead VLA on a tiny env, and
the clear refusal of rtc for a head without guided sampling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.processor import VLAProcessor
from vla_core.engine.policy import Policy
from vla_core.envs.generate import generate_dataset
from vla_core.envs.spec import CameraSpec, EnvSpec
from vla_core.models.build import build_vla
from vla_core.rtc import RTCError, RTCPrefix
from vla_core.testing import tiny_vla_spec

FLOW_HEAD = {"type": "FlowMatchingHead", "backbone_embedding_dim": 48, "state_dim": 4, "action_dim": 3,
             "traj_length": 4, "hidden_size": 32, "input_embedding_dim": 32, "num_layers": 2, "num_heads": 2,
             "dropout": 0.0, "vl_self_attention_layers": 1, "vl_self_attention_heads": 4,
             "num_target_vision_tokens": 2, "max_num_embodiments": 1, "max_seq_len": 4,
             "num_inference_timesteps": 3}


class LineEnv:
    """A point on a line that must reach +1 (image: its position as a grey level)."""

    can_skip_render = True

    def __init__(self, image_size: int = 8, max_steps: int = 10, **_: Any) -> None:
        self.spec = EnvSpec(cameras=(CameraSpec("cam", 8, 8),), state_names=("x",), action_names=("dx",),
                            action_low=(-1.0,), action_high=(1.0,), fps=10, max_steps=max_steps)

    def tasks(self) -> list[str]:
        return ["reach"]

    def instruction(self, task: str) -> str:
        return "reach the right end"

    def reset(self, task: str, seed: int) -> dict:
        self.x, self.t = -1.0 + 0.25 * (seed % 4), 0
        return self._obs()

    def step(self, action: Any, render: bool = True):
        self.x += float(np.clip(np.asarray(action)[0], -1, 1))
        self.t += 1
        return self._obs(), abs(self.x - 1.0) < 1e-6, self.t >= self.spec.max_steps

    def expert(self, task: str) -> Any:
        return LineExpert()

    def close(self) -> None:
        pass

    def _obs(self) -> dict:
        grey = int(np.clip(128 + 50 * self.x, 0, 255))
        return {"state": np.array([self.x], np.float32), "task": "reach the right end",
                "cam": np.full((8, 8, 3), grey, np.uint8)}


class LineExpert:
    uses_images = False

    def reset(self) -> None:
        pass

    def predict_chunk(self, observation: dict) -> np.ndarray:
        return np.array([[0.25]], np.float32)


@pytest.fixture
def checkpoints(tmp_path: Path, register_component: Any) -> dict[str, Path]:
    """An untrained flow-head checkpoint and an MLP-head one, fitted to LineEnv data."""
    register_component("envs", "RTCLineWorld", LineEnv)
    generate_dataset("rtclineworld", ["reach"], 2, tmp_path / "data", seed=0)
    processor_spec = {"type": "VLAProcessor", "image_size": 32, "max_state_dim": 4, "max_action_dim": 3,
                      "chunk_size": 4, "max_lang_len": 8}
    processor = VLAProcessor(**{k: v for k, v in processor_spec.items() if k != "type"})
    processor.fit(LeRobotDataset(str(tmp_path / "data"), chunk_size=4))
    out = {}
    for name, head in (("flow", FLOW_HEAD), ("mlp", None)):
        spec = tiny_vla_spec(head=head)
        spec["processor"] = processor_spec
        torch.manual_seed(0)
        build_vla(spec).save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
        out[name] = tmp_path / name
    return out


def test_eval_rtc_with_delay_runs_and_reports_switch_jumps(checkpoints: dict[str, Path], vla_cli, tmp_path: Path):
    report = tmp_path / "report.json"
    code, _ = vla_cli("eval", str(checkpoints["flow"]), "--env", "rtclineworld", "--tasks", "reach", "--episodes",
                      "2", "--execute-steps", "2", "--execution", "rtc", "--delay-steps", "2", "--image-size", "8",
                      "--output", str(report))
    assert code == 0
    result = json.loads(report.read_text())
    assert result["execution"] == "rtc" and result["delay_steps"] == 2
    row = result["policies"]["policy"]["tasks"][0]
    assert row["episodes"] == 2 and row["switch_jump"] is not None and row["mean_wait_steps"] == 2
    episodes = result["policies"]["policy"]["episodes"]
    assert all(e["switches"] >= 1 for e in episodes if e["steps"] > 2)


def test_rtc_is_refused_for_a_head_without_guided_sampling(checkpoints: dict[str, Path], vla_cli):
    code, _ = vla_cli("eval", str(checkpoints["mlp"]), "--env", "rtclineworld", "--tasks", "reach", "--episodes",
                      "1", "--execute-steps", "2", "--execution", "rtc", "--delay-steps", "1", "--image-size", "8")
    assert code == 2
    policy = Policy.from_pretrained(checkpoints["mlp"])
    observation = {"images": {"observation.images.cam": np.zeros((8, 8, 3), np.uint8)}, "state": np.zeros(1),
                   "task": "reach the right end"}
    prefix = RTCPrefix(actions=np.zeros((2, 1)), inference_delay=1, prefix_attention_horizon=2)
    with pytest.raises(RTCError, match=r"LlavaVLA with head MLPActionHead cannot use execution mode 'rtc'.*"
                                       r"'sync', 'naive' or 'ensemble'"):
        policy.act(observation, rtc=prefix)
    # the flow head takes it, in robot units
    flow = Policy.from_pretrained(checkpoints["flow"])
    assert flow.supports_rtc and flow.act(observation, rtc=prefix).shape == (4, 1)


def test_rtc_over_the_websocket_equals_in_process_and_drives_the_realtime_executor(checkpoints: dict[str, Path]):
    from vla_core.serving.checks import ObservationSpec
    from vla_core.serving.client import PolicyClient
    from vla_core.serving.realtime_executor import RealtimeChunkExecutor
    from vla_core.serving.server import PolicyServer
    from vla_core.serving.service import PolicyService

    policy = Policy.from_pretrained(checkpoints["flow"])
    image = np.full((8, 8, 3), 100, np.uint8)
    observation = {"images": {"observation.images.cam": image}, "state": np.array([0.5], np.float32),
                   "task": "reach the right end"}
    prefix = RTCPrefix(actions=np.array([[0.3], [0.2], [0.1]], np.float32), inference_delay=2,
                       prefix_attention_horizon=3)
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    expected = policy.act(observation, noise=noise, rtc=prefix)
    assert not np.allclose(expected, policy.act(observation, noise=noise))  # the prefix changes the chunk
    service = PolicyService(policy, ObservationSpec.from_policy(policy))
    with PolicyServer(service, port=0).start() as server, PolicyClient(server.url) as client:
        assert client.supports_rtc
        served = client.act(observation, noise=noise.numpy(), rtc=prefix)
        np.testing.assert_array_equal(served, expected)
        with RealtimeChunkExecutor(client, mode="rtc", execution_horizon=2, inference_delay=1) as executor:
            executor.reset()
            actions = [executor.act(observation) for _ in range(6)]
        assert all(a.shape == (1,) and np.isfinite(a).all() for a in actions)
        assert executor.schedule.last_request is not None and executor.schedule.last_request >= 2
