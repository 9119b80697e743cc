"""Test-only dataset and processor for the engine tests, and run-config builders.

`SyntheticRobotDataset` returns raw samples in the schema of `vla_core.data`'s
LeRobotDataset; `SyntheticProcessor` is a small processor with the VLAProcessor
interface (fit / __call__ / collate / unnormalize_actions / save_pretrained /
from_pretrained). They are registered in-process by the tests (and by the scripts the
subprocess tests run), never through entry points.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

CAMERA = "observation.images.top"


class SyntheticRobotDataset(torch.utils.data.Dataset):
    """Episodes of a smooth random walk: state (state_dim,), action chunks (T, action_dim)
    padded at episode ends, one 8x8-blocky camera image per frame.

    Args:
        num_episodes: number of episodes.
        episode_length: frames per episode.
        chunk_size: actions per sample.
        state_dim: state size.
        action_dim: action size.
        image_size: square image side.
        seed: data seed.
        nan_indices: samples whose actions are NaN (to test divergence handling).
        pad_chunks: mark chunk steps past the episode end as padding (False: every step is
            valid, so every sample weighs the same in a masked-mean loss).
    """

    def __init__(
        self,
        num_episodes: int = 4,
        episode_length: int = 8,
        chunk_size: int = 4,
        state_dim: int = 3,
        action_dim: int = 2,
        image_size: int = 16,
        seed: int = 0,
        nan_indices: list[int] | None = None,
        pad_chunks: bool = True,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.episode_length, self.chunk_size = episode_length, chunk_size
        self.states = rng.normal(size=(num_episodes, episode_length, state_dim)).cumsum(1).astype(np.float32)
        self.actions = (rng.normal(size=(num_episodes, episode_length, action_dim)) * 2 + 1).astype(np.float32)
        image_shape = (num_episodes, episode_length, image_size, image_size, 3)
        self.images = rng.integers(0, 256, size=image_shape, dtype=np.uint8)
        self.tasks = [f"pick the {color} block" for color in ("red", "green", "blue", "yellow")]
        self.nan_indices = set(nan_indices or [])
        self.pad_chunks = pad_chunks

    def __len__(self) -> int:
        return self.states.shape[0] * self.episode_length

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode, frame = divmod(int(index), self.episode_length)
        steps = np.minimum(np.arange(frame, frame + self.chunk_size), self.episode_length - 1)
        actions = self.actions[episode, steps].copy()
        if index in self.nan_indices:
            actions[:] = np.nan
        return {
            "images": {CAMERA: self.images[episode, frame]},
            "state": self.states[episode, frame],
            "actions": actions,
            "action_is_pad": (np.arange(frame, frame + self.chunk_size) >= self.episode_length) & self.pad_chunks,
            "task": self.tasks[episode % len(self.tasks)],
            "episode_index": episode,
            "frame_index": frame,
            "embodiment_id": 0,
        }


class SyntheticProcessor:
    """Raw samples -> model inputs: images scaled to [-1, 1], word-level tokens, mean/std
    normalised state and actions zero-padded to the model's max dims.

    Args:
        max_state_dim: padded state size.
        max_action_dim: padded action size.
        max_length: token sequence length.
        augment: std of random noise added to images (torch RNG) and states (numpy RNG).
    """

    def __init__(self, max_state_dim: int = 4, max_action_dim: int = 3, max_length: int = 6,
                 augment: float = 0.0) -> None:
        self.max_state_dim, self.max_action_dim, self.max_length = max_state_dim, max_action_dim, max_length
        self.augment = augment
        self.vocab: dict[str, int] = {}
        self.stats: dict[str, list[float]] = {}

    # ---- fitting and saving ---------------------------------------------------------------
    def fit(self, dataset: Any) -> SyntheticProcessor:
        states = np.stack([dataset[i]["state"] for i in range(len(dataset))])
        actions = np.concatenate([dataset[i]["actions"] for i in range(len(dataset))])
        actions = actions[np.isfinite(actions).all(1)]
        self.stats = {
            "state_mean": states.mean(0).tolist(),
            "state_std": states.std(0).tolist(),
            "action_mean": actions.mean(0).tolist(),
            "action_std": actions.std(0).tolist(),
        }
        words = sorted({w for task in dataset.tasks for w in task.split()})
        self.vocab = {w: i + 2 for i, w in enumerate(words)}  # 0 pad, 1 unknown
        return self

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        (directory / "processor").mkdir(parents=True, exist_ok=True)
        settings = {"max_state_dim": self.max_state_dim, "max_action_dim": self.max_action_dim,
                    "max_length": self.max_length, "vocab": self.vocab}
        (directory / "processor" / "config.json").write_text(json.dumps(settings))
        (directory / "dataset_statistics.json").write_text(json.dumps(self.stats))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SyntheticProcessor:
        directory = Path(directory)
        settings = json.loads((directory / "processor" / "config.json").read_text())
        processor = cls(settings["max_state_dim"], settings["max_action_dim"], settings["max_length"])
        processor.vocab = settings["vocab"]
        processor.stats = json.loads((directory / "dataset_statistics.json").read_text())
        return processor

    # ---- processing -----------------------------------------------------------------------
    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean, std = np.asarray(self.stats[f"{name}_mean"]), np.asarray(self.stats[f"{name}_std"])
        return ((x - mean) / (std + 1e-8)).astype(np.float32)

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        image = torch.from_numpy(np.stack(list(raw["images"].values()))).permute(0, 3, 1, 2).float() / 127.5 - 1
        tokens = [self.vocab.get(w, 1) for w in raw["task"].split()][: self.max_length]
        lang = torch.zeros(self.max_length, dtype=torch.long)
        lang[: len(tokens)] = torch.tensor(tokens)
        state = torch.zeros(self.max_state_dim)
        state_value = self._norm(np.asarray(raw["state"]), "state")
        state[: len(state_value)] = torch.from_numpy(state_value)
        if self.augment:
            image = image + self.augment * torch.randn(image.shape)
            state[: len(state_value)] += torch.from_numpy(self.augment * np.random.randn(len(state_value)).astype("f4"))
        sample = {
            "images": image,
            "img_masks": torch.ones(image.shape[0], dtype=torch.bool),
            "lang_tokens": lang,
            "lang_masks": lang > 0,
            "states": state,
            "embodiment_id": torch.tensor(int(raw.get("embodiment_id", 0))),
        }
        if "actions" in raw:
            actions = self._norm(np.asarray(raw["actions"]), "action")
            padded = torch.zeros(actions.shape[0], self.max_action_dim)
            padded[:, : actions.shape[1]] = torch.from_numpy(actions)
            sample["actions"] = padded
            sample["action_masks"] = ~torch.from_numpy(np.asarray(raw["action_is_pad"]))
        return sample

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}

    def unnormalize_actions(self, actions: Any) -> np.ndarray:
        actions = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        mean, std = np.asarray(self.stats["action_mean"]), np.asarray(self.stats["action_std"])
        return (actions[..., : len(mean)] * (std + 1e-8) + mean).astype(np.float32)


SYNTHETIC_COMPONENTS = (("datasets", "SyntheticRobotDataset", SyntheticRobotDataset),
                        ("processors", "SyntheticProcessor", SyntheticProcessor))


def register_synthetic(register: Any) -> None:
    """Register the dataset and processor with `register(kind, name, cls)`."""
    for kind, name, cls in SYNTHETIC_COMPONENTS:
        register(kind, name, cls)


@contextlib.contextmanager
def synthetic_registered() -> Iterator[None]:
    """The synthetic components registered in this process while the block runs."""
    from vla_core import registry

    register_synthetic(registry.register)
    try:
        yield
    finally:
        for kind, name, _ in SYNTHETIC_COMPONENTS:
            registry.unregister(kind, name)


def tiny_model_spec(llm_layers: int = 2, hidden: int = 32) -> dict[str, Any]:
    """A tiny LlavaVLA: SigLIP (16 px images, 8 px patches) -> MLP projector -> Qwen2 -> MLP head."""
    return {
        "type": "LlavaVLA",
        "vision_backbone": {
            "type": "TransformersVisionBackbone",
            "model_type": "siglip_vision_model",
            "config": {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 16, "patch_size": 8},
        },
        "projector": {"type": "MLPProjector", "in_dim": hidden, "out_dim": hidden},
        "llm_backbone": {
            "type": "TransformersLLMBackbone",
            "model_type": "qwen2",
            "config": {"vocab_size": 64, "hidden_size": hidden, "intermediate_size": 2 * hidden,
                       "num_hidden_layers": llm_layers, "num_attention_heads": 2, "num_key_value_heads": 2},
        },
        "vla_head": {"type": "MLPActionHead", "input_dim": hidden, "state_dim": 4, "action_dim": 3,
                     "chunk_size": 4, "hidden_dim": 32},
        "processor": {"type": "SyntheticProcessor", "max_state_dim": 4, "max_action_dim": 3},
    }


def run_config(output_dir: str | Path, data: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    """A raw run config for the tiny model on the synthetic dataset."""
    # fp32 whatever the CPU: these tests compare losses and weights to 1e-6 across runs
    # (precision auto would pick bf16 on AMX machines); tests/core/test_precision.py covers auto.
    settings = {"steps": 4, "batch_size": 4, "lr": 1e-3, "save_every": 2, "log_every": 1, "seed": 0,
                "precision": "fp32"}
    settings.update(train)
    return {
        "model": tiny_model_spec(),
        "data": data or {"type": "SyntheticRobotDataset"},
        "train": settings,
        "output_dir": str(output_dir),
    }


# ---- real LeRobot data (LeRobotWriter -> LeRobotDataset -> VLAProcessor) ------------------------
LEROBOT_TASKS = ("pick the red block", "open the drawer", "push the green button")


def write_lerobot_dataset(
    root: Path, episodes: int = 4, length: int = 8, state_dim: int = 3, action_dim: int = 2, image_size: int = 16
) -> Path:
    """A LeRobot v3.0 dataset (one inline-PNG camera) written by our LeRobotWriter."""
    from vla_core.data.lerobot_writer import LeRobotWriter

    features = {
        CAMERA: {"dtype": "image", "shape": [image_size, image_size, 3]},
        "observation.state": {"dtype": "float32", "shape": [state_dim]},
        "action": {"dtype": "float32", "shape": [action_dim]},
    }
    rng = np.random.default_rng(0)
    writer = LeRobotWriter.create(root, fps=10, features=features, robot_type="toy_arm")
    for episode in range(episodes):
        state = rng.normal(size=state_dim)
        for _ in range(length):
            state = state + 0.3 * rng.normal(size=state_dim)
            writer.add_frame({
                CAMERA: rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8),
                "observation.state": state.astype(np.float32),
                "action": (2 * rng.normal(size=action_dim) + 1).astype(np.float32),
            }, task=LEROBOT_TASKS[episode % len(LEROBOT_TASKS)])
        writer.save_episode()
    writer.finalize()
    return root


def lerobot_run_config(output_dir: str | Path, root: str | Path, chunk_size: int = 4, **train: Any) -> dict[str, Any]:
    """A raw run config: the tiny model with a VLAProcessor on a LeRobotDataset."""
    config = run_config(output_dir, data={"type": "LeRobotDataset", "root": str(root), "chunk_size": chunk_size},
                        **train)
    config["model"]["vla_head"]["chunk_size"] = chunk_size
    config["model"]["processor"] = {"type": "VLAProcessor", "image_size": 16, "max_lang_len": 6,
                                    "max_state_dim": 4, "max_action_dim": 3, "chunk_size": chunk_size}
    return config


# The one 2-process FSDP run that test_fsdp, test_sharded_checkpoints and test_async_save all
# compare against (conftest.py: `two_process_run`; one torchrun launch instead of three):
# 6 steps, checkpoints at steps 3 and 6. max_grad_norm is below the gradient norm (~0.3), so
# clipping over the sharded gradients is exercised too.
TWO_PROCESS_SETTINGS = {"steps": 6, "save_every": 3, "keep_last": 5, "batch_size": 4, "lr": 1e-3,
                        "weight_decay": 0.01, "warmup_steps": 2, "max_grad_norm": 0.05}


HERE = Path(__file__).resolve().parent
TRAIN_SCRIPT = HERE / "train_script.py"


def train(raw_config: dict[str, Any], resume: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """Validate `raw_config` and train it in this process -> (Trainer, TrainResult)."""
    from vla_core.config.run import validate_run_config
    from vla_core.engine.trainer import Trainer
    from vla_core.plugin_manager import new_plugin_manager

    kwargs.setdefault("plugin_manager", new_plugin_manager())
    trainer = Trainer(validate_run_config(raw_config), resume=resume, **kwargs)
    return trainer, trainer.fit()


def script_env() -> dict[str, str]:
    """Environment for training subprocesses: one thread each, these fixtures importable."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def script_command(config_path: Path, *options: str, nproc: int = 1) -> list[str]:
    """`python train_script.py CONFIG ...`, under torchrun when nproc > 1."""
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        return [*launcher, str(TRAIN_SCRIPT), str(config_path), *options]
    return [sys.executable, str(TRAIN_SCRIPT), str(config_path), *options]


def run_script(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, env=script_env(), timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def write_config(path: Path, raw_config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(raw_config))
    return path
