"""Helpers of the serving tests: a tiny two-camera checkpoint, an in-process server, observations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.processor import VLAProcessor
from vla_core.models.build import build_vla
from vla_core.serving.checks import ObservationSpec
from vla_core.serving.server import PolicyServer
from vla_core.serving.service import PolicyService
from vla_core.testing import tiny_vla_spec

DATASET = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot" / "v21_image"
TOP, WRIST = "observation.images.top", "observation.images.wrist"
CHUNK, STATE_DIM, ACTION_DIM = 4, 8, 7


def make_checkpoint(directory: Path) -> Path:
    """A randomly initialised tiny VLA + a processor fitted on the lerobot v2.1 fixture (cameras
    top 64x64 and wrist 48x48, state 8, action 7), saved as a checkpoint."""
    processor_spec = {"type": "VLAProcessor", "image_size": 32, "max_state_dim": 8, "max_action_dim": 7,
                      "chunk_size": CHUNK, "max_lang_len": 8}
    processor = VLAProcessor(**{k: v for k, v in processor_spec.items() if k != "type"})
    processor.fit(LeRobotDataset(str(DATASET), chunk_size=CHUNK))
    head = {"type": "MLPActionHead", "input_dim": 48, "action_dim": 7, "chunk_size": CHUNK, "state_dim": 8}
    torch.manual_seed(0)
    vla = build_vla({**tiny_vla_spec(head=head), "processor": processor_spec})
    vla.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_server(policy: Any, **options: Any) -> PolicyServer:
    """A started in-process server on a free loopback port (stop() it, or use `with`)."""
    spec_options = {k: options.pop(k) for k in ("frame_size",) if k in options}
    service = PolicyService(policy, ObservationSpec.from_policy(policy, **spec_options), {"model_type": "LlavaVLA"})
    return PolicyServer(service, port=0, **options).start()


def observation(seed: int = 0) -> dict[str, Any]:
    """A nested observation in the checkpoint's names (what `Policy.act` takes)."""
    rng = np.random.default_rng(seed)
    return {
        "images": {TOP: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                   WRIST: rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)},
        "state": rng.normal(size=STATE_DIM).astype(np.float32),
        "task": "open the drawer",
    }


def openpi_observation(seed: int = 0) -> dict[str, Any]:
    """The same observation with openpi's flat LIBERO-style keys."""
    obs = observation(seed)
    return {"observation/image": obs["images"][TOP], "observation/wrist_image": obs["images"][WRIST],
            "observation/state": obs["state"], "prompt": obs["task"]}


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(100 + seed).normal(size=(CHUNK, ACTION_DIM)).astype(np.float32)
