"""Observation history on Meta-World: an MLP head on 1 frame vs RoboFlamingo's LSTM and GPT
heads on a window, on the 3 demo tasks + the 2 variants where history should matter.

    .venv/bin/python benchmarks/metaworld_history.py                      # everything (~1.5-2 h on 2 cores)
    .venv/bin/python benchmarks/metaworld_history.py --skip-generate --models lstm
    .venv/bin/python benchmarks/metaworld_history.py --report-only        # the tables from runs/history

Stages, each a `vla` command run as a subprocess (printed before it runs), one after
another: generate the expert dataset (`--tasks demo,history`), train each of
configs/history_{mlp,lstm,gpt}.yaml on it, evaluate each checkpoint on unseen layouts
(seed 1000 on), then the scripted expert and a random policy on the same layouts. Prints
the wall and CPU time of each stage, then success per task and model with 95% Wilson
intervals, and each training's steps and final loss.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metaworld_demo import children_cpu_seconds, run_stage

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
MODELS = {"mlp": "MLP (FCDecoder), 1 frame", "lstm": "LSTM (DeterministicDecoder), 4 frames",
          "gpt": "GPT (GPTDecoder), 4 frames"}


def cell(row: dict) -> str:
    """'k/n, rate% [low–high]' (the mean row: the mean of the task rates, the interval of all episodes)."""
    counts = f"{row['successes']}/{row['episodes']}, " if row["task"] != "mean" else ""
    return f"{counts}{100 * row['success_rate']:.0f}% [{100 * row['ci_low']:.0f}–{100 * row['ci_high']:.0f}]"


def report(out: Path, models: list[str]) -> None:
    """Markdown tables from OUT/<model>/eval.json, OUT/baselines.json and the metrics."""
    columns: dict[str, dict] = {}
    for name in models:
        path = out / name / "eval.json"
        if path.exists():
            columns[MODELS[name]] = next(iter(json.loads(path.read_text())["policies"].values()))
    baselines = out / "baselines.json"
    if baselines.exists():
        columns.update(json.loads(baselines.read_text())["policies"])
    if not columns:
        print("no evaluation reports yet")
        return
    tasks = [row["task"] for row in next(iter(columns.values()))["tasks"] if row["task"] != "mean"]
    layouts = next(iter(columns.values()))["tasks"][0]["episodes"]
    print(f"| task ({layouts} unseen layouts) | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for task in tasks:
        cells = []
        for result in columns.values():
            row = next((r for r in result["tasks"] if r["task"] == task), None)
            cells.append(cell(row) if row else "not run")
        print(f"| {task.removesuffix('-v3')} | " + " | ".join(cells) + " |")
    means = [next((r for r in result["tasks"] if r["task"] == "mean"), None) for result in columns.values()]
    if any(means):  # one task: no mean row
        print("| **mean** | " + " | ".join(cell(r) if r else "" for r in means) + " |")
    for name in models:
        metrics = out / name / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            steps = [r for r in rows if "loss" in r]
            if steps:
                last = steps[-1]
                print(f"{name}: {last['step']} steps, final loss {last['loss']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="demo,history")
    parser.add_argument("--episodes", type=int, default=25, help="Expert episodes per task for training.")
    parser.add_argument("--eval-episodes", type=int, default=20, help="Unseen layouts per task.")
    parser.add_argument("--models", default="mlp,lstm,gpt", help="Which of configs/history_*.yaml, in order.")
    parser.add_argument("--steps", type=int, default=None, help="Training steps (the configs': 1000).")
    parser.add_argument("--out", default="runs/history")
    parser.add_argument("--execute-steps", type=int, default=4,
                        help="Actions executed per chunk; the windows' frames are this many env steps apart.")
    parser.add_argument("--workers", type=int, default=1, help="Processes generating the demos.")
    parser.add_argument("--skip-generate", action="store_true", help="Reuse the dataset in OUT/data.")
    parser.add_argument("--skip-train", action="store_true", help="Evaluate the existing checkpoints.")
    parser.add_argument("--baselines", default="expert,random", help="'' to skip them.")
    parser.add_argument("--report-only", action="store_true", help="Only print the tables of OUT.")
    args = parser.parse_args()
    out, models = Path(args.out), [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    if args.report_only:
        report(out, list(MODELS))
        return
    vla = str(BIN / "vla")
    eval_args = ["--env", "metaworld", "--tasks", args.tasks, "--episodes", str(args.eval_episodes), "--seed", "1000",
                 "--image-size", "64", "--threads", "1"]
    stages = []
    start, cpu = time.perf_counter(), children_cpu_seconds()
    if not args.skip_generate:
        command = [vla, "data", "generate", "--env", "metaworld", "--tasks", args.tasks, "--episodes",
                   str(args.episodes), "--image-size", "64", "--workers", str(args.workers), "--seed", "0",
                   "--out", str(out / "data"), "--overwrite"]
        stages.append(("generate", run_stage("generate", command)))
    one_thread = {"OMP_NUM_THREADS": "1"}  # two OpenMP threads spin against the data worker on 2 cores
    for name in models:
        run = out / name
        if not args.skip_train:
            shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the trainer refuses to overwrite a run
            (run / "metrics.jsonl").unlink(missing_ok=True)
            overrides = [f"data.root={out / 'data'}", f"output_dir={run}"]
            if args.steps:
                overrides += [f"train.steps={args.steps}", f"train.save_every={args.steps}"]
            command = [vla, "train", f"configs/history_{name}.yaml", *[x for o in overrides for x in ("--set", o)]]
            stages.append((f"train {name}", run_stage(f"train {name}", command, env=one_thread)))
        command = [vla, "eval", str(run), *eval_args, "--execute-steps", str(args.execute_steps),
                   "--output", str(run / "eval.json")]
        stages.append((f"evaluate {name}", run_stage(f"eval {name}", command, env=one_thread)))
    if args.baselines:
        command = [vla, "eval", args.baselines.split(",")[0], *eval_args, "--output", str(out / "baselines.json")]
        rest = args.baselines.split(",")[1:]
        if rest:
            command += ["--baselines", ",".join(rest)]
        stages.append(("evaluate baselines", run_stage("baselines", command)))
    stages.append(("total", (time.perf_counter() - start, children_cpu_seconds() - cpu)))
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| stage | wall s | CPU s (all processes) |\n|---|---|---|")
    for name, (wall, cpu_s) in stages:
        print(f"| {name} | {wall:.0f} | {cpu_s:.0f} |")
    print()
    report(out, models)


if __name__ == "__main__":
    main()
