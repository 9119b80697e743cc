"""The Meta-World demo end to end (what `make demo` runs), and offscreen rendering speed.

    .venv/bin/python benchmarks/metaworld_demo.py                       # render + demo (3 tasks x 20)
    .venv/bin/python benchmarks/metaworld_demo.py --render-only
    .venv/bin/python benchmarks/metaworld_demo.py --tasks mt10 --episodes 50 \\
        --config configs/quickstart.yaml --out runs/mt10_mlp --set train.steps=6000   # the MT10 table

Stages, each a `vla` command run as a subprocess (printed before it runs): generate the
expert dataset, train the config on it, evaluate the checkpoint on unseen layouts next to
the scripted expert and a random policy. Prints the wall time of each stage and the
success rate per task with 95% Wilson intervals.

The render benchmark times one 64 and 128 px `corner4` frame with MuJoCo's default
offscreen settings (shadows, 4x MSAA, reflections, skybox, 640x480 buffer) against
vla-metaworld's (`FastCamera`), in the same process, and one simulator step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


# ---- rendering -------------------------------------------------------------------------------
def time_frames(render, frames: int) -> float:
    render()  # warm-up: first frame uploads the meshes
    start = time.perf_counter()
    for _ in range(frames):
        render()
    return (time.perf_counter() - start) / frames * 1000


def render_benchmark(frames: int) -> list[tuple[str, float]]:
    """ms per frame of MuJoCo's defaults vs FastCamera, and ms per simulator step."""
    from vla_metaworld.camera import FastCamera, load_triton_before_mesa
    from vla_metaworld.gl import configure_gl

    configure_gl()
    load_triton_before_mesa()
    import mujoco
    import numpy as np
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from vla_metaworld.layouts import LayoutBank

    task = "drawer-close-v3"
    layout = LayoutBank().layout(task, 0)
    rows = []
    for size in (64, 128):
        default_sim = ALL_V3_ENVIRONMENTS[task]()
        default_sim.set_task(layout)
        default_sim.reset()
        renderer = mujoco.Renderer(default_sim.model, size, size)
        cam = mujoco.mj_name2id(default_sim.model, mujoco.mjtObj.mjOBJ_CAMERA, "corner4")

        def default_frame(renderer=renderer, sim=default_sim, cam=cam):
            renderer.update_scene(sim.data, camera=cam)
            return renderer.render()

        rows.append((f"{size} px, MuJoCo default options (reference)", time_frames(default_frame, frames)))
        renderer.close()
        fast_sim = ALL_V3_ENVIRONMENTS[task]()
        fast_sim.set_task(layout)
        fast_sim.reset()
        camera = FastCamera(fast_sim.model, "corner4", size)
        fast_frame = lambda c=camera, s=fast_sim: c.render(s.data)  # noqa: E731
        rows.append((f"{size} px, vla-metaworld FastCamera", time_frames(fast_frame, frames)))
        camera.close()
    action = np.zeros(4, np.float32)
    rows.append(("simulator step (no rendering)", time_frames(lambda: fast_sim.step(action), frames)))
    return rows


# ---- the demo --------------------------------------------------------------------------------
def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stage(name: str, command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run one stage -> (wall seconds, CPU seconds of the stage's processes). On a shared
    machine the wall time depends on the load; the CPU time hardly does."""
    print(f"\n$ {' '.join(command)}", flush=True)
    start, cpu = time.perf_counter(), children_cpu_seconds()
    subprocess.run(command, check=True, env={**os.environ, **(env or {})}, cwd=REPO)
    return time.perf_counter() - start, children_cpu_seconds() - cpu


def demo(args: argparse.Namespace) -> tuple[list[tuple[str, tuple[float, float]]], dict]:
    out = Path(args.out)
    vla = str(BIN / "vla")
    overrides = [f"data.root={out / 'data'}", f"output_dir={out}", *args.set]
    stages = []
    if not args.skip_generate:
        command = [vla, "data", "generate", "--env", "metaworld", "--tasks", args.tasks, "--episodes",
                   str(args.episodes), "--image-size", str(args.image_size), "--workers", str(args.workers),
                   "--seed", "0", "--out", str(out / "data"), "--overwrite"]
        stages.append(("generate", run_stage("generate", command)))
    # A demo run starts fresh (the trainer refuses to overwrite a run's checkpoints).
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    command = [vla, "train", args.config, *[x for o in overrides for x in ("--set", o)]]
    # One math thread: two OpenMP threads spin against each other (and the data worker) on 2 cores.
    stages.append(("train", run_stage("train", command, env={"OMP_NUM_THREADS": str(args.train_threads)})))
    report = out / "eval.json"
    command = [vla, "eval", str(out), "--env", "metaworld", "--tasks", args.tasks,
               "--episodes", str(args.eval_episodes), "--seed", "1000", "--image-size", str(args.image_size),
               "--baselines", args.baselines,
               "--output", str(report), "--video", str(out / "videos"), "--threads", "1"]
    if args.execute_steps:
        command += ["--execute-steps", str(args.execute_steps)]
    stages.append(("evaluate (policy + baselines)", run_stage("eval", command)))
    return stages, json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-only", action="store_true", help="Only the rendering benchmark.")
    parser.add_argument("--no-render", action="store_true", help="Skip the rendering benchmark.")
    parser.add_argument("--frames", type=int, default=100, help="Frames per rendering measurement.")
    parser.add_argument("--tasks", default="drawer-close,button-press-topdown,window-open")
    parser.add_argument("--episodes", type=int, default=20, help="Expert episodes per task for training.")
    parser.add_argument("--eval-episodes", type=int, default=20, help="Unseen layouts per task.")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--set", action="append", default=[], help="Override in the config (repeatable).")
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--baselines", default="expert,random")
    parser.add_argument("--execute-steps", type=int, default=4, help="Actions executed per chunk (make demo: 4).")
    parser.add_argument("--train-threads", type=int, default=1)
    parser.add_argument("--skip-generate", action="store_true", help="Reuse the dataset in OUT/data.")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not args.no_render:
        rows = render_benchmark(args.frames)
        table = Table(title="corner4 camera, one frame (Mesa llvmpipe)")
        table.add_column("setting")
        table.add_column("ms", justify="right")
        table.add_column("x faster than default", justify="right")
        reference = {64: rows[0][1], 128: rows[2][1]}
        for name, ms in rows:
            size = 64 if name.startswith("64") else 128 if name.startswith("128") else None
            table.add_row(name, f"{ms:.2f}", f"{reference[size] / ms:.1f}" if size else "")
        console.print(table)
    if args.render_only:
        return
    start, cpu = time.perf_counter(), children_cpu_seconds()
    stages, report = demo(args)
    total = (time.perf_counter() - start, children_cpu_seconds() - cpu)
    table = Table(title=f"stages ({args.tasks}, {args.episodes} demos/task)")
    table.add_column("stage")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    for name, (wall, cpu_s) in [*stages, ("total", total)]:
        table.add_row(name, f"{wall:.0f}", f"{cpu_s:.0f}")
    console.print(table)
    results = Table(title=f"success over {args.eval_episodes} unseen layouts per task (95% Wilson CI)")
    results.add_column("task")
    for name in report["policies"]:
        results.add_column(name, justify="right")
    tasks = [row["task"] for row in next(iter(report["policies"].values()))["tasks"]]
    for task in tasks:
        cells = []
        for result in report["policies"].values():
            row = next(r for r in result["tasks"] if r["task"] == task)
            cells.append(f"{100 * row['success_rate']:.0f}% [{100 * row['ci_low']:.0f}-{100 * row['ci_high']:.0f}]")
        results.add_row(task, *cells)
    console.print(results)
    metrics = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    console.print(f"training: {metrics[-1]['step']} steps, final loss {metrics[-1]['loss']:.4f}")


if __name__ == "__main__":
    main()
