"""`vla data generate`: demonstration datasets from an env's scripted experts (LeRobot v3.0)."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Make datasets: demonstrations from simulators' scripted experts.", no_args_is_help=True)


@data_app.command("generate")
def generate_cmd(
    tasks: str = typer.Option(..., "--tasks", help="Comma-separated tasks or groups, e.g. drawer-close,mt10."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to create (LeRobot v3.0)."),
    env: str = typer.Option("metaworld", "--env", help="A vla.envs env (vla list-components --kind envs)."),
    episodes: int = typer.Option(20, "--episodes", help="Successful episodes to keep per task."),
    image_size: int = typer.Option(64, "--image-size", help="Camera image height and width in pixels."),
    camera: str | None = typer.Option(None, "--camera", help="Camera to record (the env's default if omitted)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Step cap per episode (env default)."),
    workers: int = typer.Option(1, "--workers", help="Processes rolling out episodes in parallel."),
    seed: int = typer.Option(0, "--seed", help="First layout seed; episodes use seed, seed+1, ..."),
    video: bool = typer.Option(False, "--video", help="Store images as MP4 video instead of inline PNG."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset at --out."),
) -> None:
    """Roll out the scripted experts, keep successful episodes, write a LeRobot v3.0 dataset.

    The same arguments give the same dataset, whatever --workers.
    """
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from vla_core.envs.generate import generate_dataset

    env_kwargs: dict[str, object] = {"image_size": image_size}
    if camera is not None:
        env_kwargs["camera"] = camera
    if max_steps is not None:
        env_kwargs["max_steps"] = max_steps
    names = [t for t in tasks.split(",") if t.strip()]
    console = Console(stderr=True)
    bars: dict[str, int] = {}
    failures: dict[str, int] = {}
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )

    def on_episode(task: str, demo: object) -> None:
        if task not in bars:
            bars[task] = progress.add_task(task, total=episodes, note="")
        if getattr(demo, "success", False):
            progress.advance(bars[task])
        else:
            failures[task] = failures.get(task, 0) + 1
            progress.update(bars[task], note=f"{failures[task]} expert failure(s) replaced")

    start = time.perf_counter()
    with progress:
        report = generate_dataset(
            env, names, episodes, out, env_kwargs=env_kwargs, seed=seed, workers=workers, video=video,
            overwrite=overwrite, on_episode=on_episode,
        )
    table = Table(title=f"{out} ({report.frames} frames, {time.perf_counter() - start:.0f} s)")
    for column in ("task", "episodes", "expert failures", "layout seeds"):
        table.add_column(column)
    for task, seeds in report.episodes.items():
        table.add_row(task, str(len(seeds)), str(len(report.failed[task])), f"{seeds[0]}..{seeds[-1]}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
