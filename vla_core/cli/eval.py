"""`vla eval CHECKPOINT --env metaworld --tasks ...`: closed-loop success rates with 95% CIs."""

from __future__ import annotations

from pathlib import Path

import typer

from vla_core.cli.options import PRECISION_OPTION, report_precision

BASELINES = ("expert", "random")


def eval_cmd(
    checkpoint: str = typer.Argument(..., help="Checkpoint directory, or 'expert' / 'random' to evaluate a baseline."),
    tasks: str = typer.Option(..., "--tasks", help="Comma-separated tasks or groups, e.g. drawer-close,window-open."),
    env: str = typer.Option("metaworld", "--env", help="A vla.envs env (vla list-components --kind envs)."),
    episodes: int = typer.Option(20, "--episodes", help="Rollouts per task."),
    seed: int = typer.Option(1000, "--seed", help="First layout seed; keep it away from the training seeds."),
    execute_steps: int | None = typer.Option(
        None, "--execute-steps", "-k", help="Actions executed per predicted chunk (k of T); default: all T."
    ),
    execution: str = typer.Option(
        "sync", "--execution",
        help="How chunks run while the next is computed: sync (wait), naive (switch on arrival), ensemble (ACT "
        "temporal ensembling), rtc (real-time chunking; flow-matching heads). See docs/evaluation.md.",
    ),
    delay_steps: int = typer.Option(
        0, "--delay-steps", help="Simulated inference latency in env steps: the env keeps executing the previous "
        "chunk for this many steps while the next is computed (sync: the world waits instead).",
    ),
    max_guidance_weight: float = typer.Option(5.0, "--max-guidance-weight", help="rtc: clip of the guidance weight."),
    image_size: int = typer.Option(64, "--image-size", help="Camera image size the env renders."),
    camera: str | None = typer.Option(None, "--camera", help="Camera to render (the env's default if omitted)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Step cap per episode (the env's default)."),
    baselines: str = typer.Option("", "--baselines", help="Also run these on the same layouts: expert,random."),
    video: Path | None = typer.Option(None, "--video", help="Directory for videos of the first episodes of each task."),
    video_format: str = typer.Option("mp4", "--video-format", help="mp4 or gif."),
    videos_per_task: int = typer.Option(2, "--videos-per-task", help="Episodes per task recorded with --video."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of the table."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    device: str = typer.Option("cpu", "--device", help="Where the model runs (cpu, cuda)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    precision: str = PRECISION_OPTION,
) -> None:
    """Roll a policy out on unseen layouts; print success per task with 95% Wilson intervals."""
    import json
    import time

    from rich.console import Console

    from vla_core.envs.evaluate import evaluate
    from vla_core.envs.generate import resolve_tasks
    from vla_core.envs.make import make_env
    from vla_core.envs.results import results_json, summarize
    from vla_core.errors import EnvError
    from vla_core.serving.chunk_schedule import ChunkSchedule

    if episodes < 1:
        raise EnvError(f"--episodes must be >= 1, got {episodes}.")
    if video_format not in ("mp4", "gif"):
        raise EnvError(f"--video-format is mp4 or gif, not '{video_format}'.")
    extra = [b.strip() for b in baselines.split(",") if b.strip()]
    unknown = [b for b in extra if b not in BASELINES]
    if unknown:
        raise EnvError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}.")
    schedule = ChunkSchedule(
        execution, execution_horizon=execute_steps, inference_delay=delay_steps,  # type: ignore[arg-type]
        max_guidance_weight=max_guidance_weight,
    )
    env_kwargs: dict[str, object] = {"image_size": image_size}
    if camera is not None:
        env_kwargs["camera"] = camera
    if max_steps is not None:
        env_kwargs["max_steps"] = max_steps
    console = Console(stderr=True)
    sim = make_env(env, **env_kwargs)
    task_names = resolve_tasks(sim, [t for t in tasks.split(",") if t.strip()])
    names = [checkpoint, *[b for b in extra if b != checkpoint]]
    report: dict[str, object] = {
        "env": env, "tasks": task_names, "episodes": episodes, "seed": seed, "execute_steps": execute_steps,
        "execution": execution, "delay_steps": delay_steps, "policies": {},
    }
    try:
        for name in names:
            make_policy = _policy_factory(name, sim, seed, device, threads, precision, console)
            start = time.perf_counter()
            with _progress(console, f"{_label(name)}", len(task_names) * episodes) as advance:
                episodes_run = evaluate(
                    sim, make_policy, task_names, episodes, seed, execute_steps=execute_steps,
                    video_dir=(video / _label(name)) if video is not None else None, videos_per_task=videos_per_task,
                    video_format=video_format, on_episode=lambda _episode: advance(),
                    execution=None if name in BASELINES else schedule,
                )
            rows = summarize(episodes_run)
            report["policies"][_label(name)] = results_json(  # type: ignore[index]
                rows, episodes_run, policy=name, seconds=round(time.perf_counter() - start, 1)
            )
    finally:
        sim.close()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        Console().print(_table(report))
        if video is not None:
            console.print(f"videos: {video}/")


def _label(name: str) -> str:
    return name if name in BASELINES else "policy"


def _policy_factory(
    name: str, env: object, seed: int, device: str, threads: int | None, precision: str, console: object
):
    """'expert' / 'random' / a checkpoint directory -> task -> rollout policy."""
    if name == "expert" and not Path(name).exists():
        if not callable(getattr(env, "expert", None)):
            from vla_core.errors import EnvError

            raise EnvError("this env has no scripted experts; drop 'expert' from --baselines.")
        return env.expert  # type: ignore[attr-defined]
    if name == "random" and not Path(name).exists():
        from vla_core.envs.policies import RandomPolicy

        policy = RandomPolicy(env.spec, seed=seed)  # type: ignore[attr-defined]
        return lambda task: policy
    import torch

    from vla_core.envs.vla_policy import VLAPolicy

    if threads:
        torch.set_num_threads(threads)
    policy = VLAPolicy.from_checkpoint(name, env.spec, seed=seed, device=device,  # type: ignore[attr-defined]
                                       precision=precision)
    report_precision(policy.policy.precision, console)
    return lambda task: policy


class _progress:
    """A rich progress bar on stderr; the context value advances it by one episode."""

    def __init__(self, console: object, label: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn(f"eval {label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.bar = self.progress.add_task(label, total=total)

    def __enter__(self):
        self.progress.start()
        return lambda: self.progress.advance(self.bar)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _table(report: dict) -> object:
    """Rows = tasks (+ mean), columns = policies: successes/episodes, rate and its 95% CI."""
    from rich.table import Table

    policies = report["policies"]
    title = (
        f"{report['env']}: success over {report['episodes']} unseen layouts per task "
        f"(seeds {report['seed']}..{report['seed'] + report['episodes'] - 1}), 95% Wilson CI"
    )
    table = Table(title=title)
    table.add_column("task")
    for name in policies:
        table.add_column(name, justify="right")
    tasks = [row["task"] for row in next(iter(policies.values()))["tasks"]]
    for task in tasks:
        cells = []
        for result in policies.values():
            row = next(r for r in result["tasks"] if r["task"] == task)
            count = f"{row['successes']}/{row['episodes']} " if task != "mean" else ""
            rate, low, high = (round(100 * row[k]) for k in ("success_rate", "ci_low", "ci_high"))
            cells.append(f"{count}{rate}% [{low}-{high}]")
        table.add_row(task, *cells, end_section=task == tasks[-2] if len(tasks) > 1 else False)
    jumps = [
        f"{name} {result['tasks'][-1]['switch_jump']:.4f}"
        for name, result in policies.items()
        if name not in BASELINES and result["tasks"][-1].get("switch_jump") is not None
    ]
    if jumps:
        table.caption = (
            f"execution {report.get('execution', 'sync')}, delay {report.get('delay_steps', 0)} steps; mean "
            f"|a_t - a_(t-1)| at chunk switches: {', '.join(jumps)}"
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
