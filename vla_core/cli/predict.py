"""`vla predict CHECKPOINT`: one observation in, the predicted action chunk out (robot units)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vla_core.cli.options import PRECISION_OPTION, report_precision


def observation_from_files(images: list[str], state: str | None, instruction: str | None) -> dict[str, Any]:
    """`--image cam=path.png` (repeatable), `--state 0.1,0.2,...`, `--instruction "..."` -> a raw observation."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from vla_core.errors import ConfigError

    frames: dict[str, Any] = {}
    for item in images:
        camera, sep, path = item.partition("=")
        if not sep or not camera or not path:
            raise ConfigError(
                f"--image '{item}' is not camera=path; name the dataset camera it stands for, e.g. "
                "--image observation.images.top=frame.png."
            )
        try:
            with Image.open(path) as image:
                frames[camera] = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise ConfigError(f"--image {camera}: cannot read '{path}' as an image ({exc}).") from None
    if not frames:
        raise ConfigError("give an observation: --dataset ROOT --index I, or --image camera=path.png ... --state ...")
    if state is None:
        raise ConfigError("--state is required with --image: the robot state as comma-separated numbers.")
    try:
        values = np.array([float(v) for v in state.split(",") if v.strip()], dtype=np.float32)
    except ValueError:
        raise ConfigError(f"--state '{state}' must be comma-separated numbers, e.g. --state 0.1,0.2,0.3.") from None
    # No embodiment_id: the processor fills in the one of the data the checkpoint was trained on.
    return {"images": frames, "state": values, "task": instruction or ""}


def observation_from_dataset(checkpoint: Path, root: Path, index: int) -> dict[str, Any]:
    """Frame `index` of the dataset at `root`, read with the checkpoint's data settings
    (embodiment: cameras, state and action keys)."""
    from vla_core.errors import ConfigError
    from vla_core.models.build import build_component
    from vla_core.models.pretrained import read_checkpoint_config

    spec = dict(read_checkpoint_config(checkpoint).get("data") or {"type": "LeRobotDataset"})
    spec["root"] = str(root)
    dataset = build_component("datasets", spec, "data")
    if not 0 <= index < len(dataset):
        raise ConfigError(f"--index {index} is out of range: the dataset at '{root}' has {len(dataset)} frames.")
    return dataset[index]


def predict_cmd(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint directory (runs/NAME/checkpoints/step-N), or a run directory (its latest checkpoint)."
    ),
    dataset: Path | None = typer.Option(None, "--dataset", help="LeRobot dataset root to read the observation from."),
    index: int = typer.Option(0, "--index", help="Frame index in --dataset."),
    image: list[str] = typer.Option([], "--image", help="camera=path.png (repeatable), instead of --dataset."),
    state: str | None = typer.Option(None, "--state", help="Robot state, comma-separated (with --image)."),
    instruction: str | None = typer.Option(None, "--instruction", help="Task instruction (overrides the dataset's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    seed: int = typer.Option(0, "--seed", help="Seed for generative heads' noise."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    precision: str = PRECISION_OPTION,
) -> None:
    """Predict the action chunk for one observation and print it in robot units."""
    import json

    import numpy as np
    import torch

    from vla_core.devices import resolve_device
    from vla_core.engine.checkpoint import resolve_checkpoint
    from vla_core.engine.policy import Policy
    from vla_core.models.pretrained import read_checkpoint_config

    resolve_device(device)  # a missing GPU or a wrong path fails before anything is read
    checkpoint = resolve_checkpoint(checkpoint)
    read_checkpoint_config(checkpoint)
    if dataset is not None:
        observation = observation_from_dataset(checkpoint, dataset, index)
        if instruction is not None:
            observation["task"] = instruction
    else:
        observation = observation_from_files(image, state, instruction)
    policy = Policy.from_pretrained(checkpoint, device=device, precision=precision)
    report_precision(policy.precision)
    torch.manual_seed(seed)
    actions = policy.act(observation)
    target = observation.get("actions")
    if as_json:
        record: dict[str, Any] = {"checkpoint": str(checkpoint), "shape": list(actions.shape)}
        record["actions"] = actions.tolist()
        if target is not None:
            record["dataset_actions"] = np.asarray(target).tolist()
        typer.echo(json.dumps(record))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"action chunk {tuple(actions.shape)} (robot units)")
    table.add_column("t", justify="right")
    for j in range(actions.shape[1]):
        table.add_column(f"a{j}", justify="right")
    for t, row in enumerate(actions):
        table.add_row(str(t), *(f"{v:.4f}" for v in row))
    console = Console()
    console.print(table)
    if target is not None:
        target = np.asarray(target, dtype=np.float32)[: actions.shape[0], : actions.shape[1]]
        valid = ~np.asarray(observation.get("action_is_pad", np.zeros(len(target), bool)))[: len(target)]
        error = float(np.abs(actions[: len(target)] - target)[valid].mean()) if valid.any() else float("nan")
        console.print(f"mean |prediction - dataset action| over valid steps: {error:.4f}")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
