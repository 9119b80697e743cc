"""Chunk execution under inference delay on Meta-World: sync / naive / ensemble / rtc at delays d.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rtc_metaworld.py runs/quickstart_flow
    .venv/bin/python benchmarks/rtc_metaworld.py runs/quickstart_flow --report-only

Loads the checkpoint once (a flow-matching head: rtc needs guided sampling) and evaluates
it in process on the demo tasks, `--episodes` unseen layouts each (seed 1000 on), for every
execution mode and delay: the env keeps executing the previous chunk for d steps while the
next is computed (`vla eval --execution MODE --delay-steps d` does the same run). The chunk
sampling noise is the same in every run (seeded per episode).

Two cells are not run because they are the same computation as another: `sync` does not
depend on d in simulation (the world waits; only the idle steps grow), and `naive` at d = 0
is `sync` (request every s steps, execute rows 0 .. s-1). Each finished (mode, d) is written
to OUT/<mode>_d<d>.json, so an interrupted run resumes. Prints a markdown table: success
with 95% Wilson intervals and the mean |a_t - a_(t-1)| at chunk switches (mean over action
dims and over all switches of all episodes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TASKS = "drawer-close,button-press-topdown,window-open"
MODES = ("sync", "naive", "ensemble", "rtc")


def run_config(args: argparse.Namespace, mode: str, delay: int, model, env, tasks: list[str]) -> dict:
    from vla_core.envs.evaluate import evaluate
    from vla_core.envs.results import results_json, summarize
    from vla_core.envs.vla_policy import VLAPolicy
    from vla_core.serving.chunk_schedule import ChunkSchedule

    policy = VLAPolicy(model, env.spec, seed=args.seed)  # a fresh one: episode e samples the same noise in every run

    schedule = ChunkSchedule(mode, execution_horizon=args.execute_steps, inference_delay=delay,  # type: ignore[arg-type]
                             max_guidance_weight=args.max_guidance_weight)
    start, cpu = time.perf_counter(), time.process_time()
    episodes = evaluate(env, lambda task: policy, tasks, args.episodes, args.seed, execution=schedule,
                        max_steps=args.max_steps, on_episode=lambda e: print("s" if e.success else "f", end="",
                                                                             flush=True))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f" {mode} d={delay}: {wall:.0f} s wall, {cpu:.0f} s CPU, load {os.getloadavg()[0]:.2f}", flush=True)
    return results_json(summarize(episodes), episodes, mode=mode, delay_steps=delay, seconds=round(wall, 1),
                        cpu_seconds=round(cpu, 1), load=round(os.getloadavg()[0], 2))


def source_of(mode: str, delay: int) -> tuple[str, int]:
    """The run whose numbers a cell shows (see the module docstring)."""
    if mode == "sync" or (mode == "naive" and delay == 0):
        return "sync", 0
    return mode, delay


def report(out: Path, delays: list[int]) -> None:
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*_d*.json"))}
    if not results:
        print("no results yet")
        return
    print("| mode | " + " | ".join(f"d={d}: success | d={d}: switch jump" for d in delays) + " |")
    print("|---" * (1 + 2 * len(delays)) + "|")
    for mode in MODES:
        cells = []
        for delay in delays:
            result = results.get("{}_d{}".format(*source_of(mode, delay)))
            if result is None:
                cells += ["not run", "not run"]
                continue
            mean = result["tasks"][-1]
            rate = f"{100 * mean['success_rate']:.0f}% [{100 * mean['ci_low']:.0f}–{100 * mean['ci_high']:.0f}]"
            jump = "–" if mean["switch_jump"] is None else f"{mean['switch_jump']:.4f}"
            cells += [rate, jump]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print("\nper task (successes / episodes):")
    for name, result in results.items():
        per_task = ", ".join(f"{r['task'].removesuffix('-v3')} {r['successes']}/{r['episodes']}"
                             for r in result["tasks"] if r["task"] != "mean")
        print(f"  {name}: {per_task}; {result['seconds']} s wall, {result['cpu_seconds']} s CPU, "
              f"load {result['load']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="A flow-matching checkpoint (or its run directory).")
    parser.add_argument("--out", default="runs/rtc")
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--execute-steps", type=int, default=4, help="s: actions per chunk (the same for every mode).")
    parser.add_argument("--max-steps", type=int, default=None, help="Step cap per episode (Meta-World's: 500).")
    parser.add_argument("--delays", default="0,2,4")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--max-guidance-weight", type=float, default=5.0)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    delays = [int(d) for d in args.delays.split(",")]
    if not args.report_only:
        import torch

        from vla_core.engine.policy import Policy
        from vla_core.envs.generate import resolve_tasks
        from vla_core.envs.make import make_env

        torch.set_num_threads(1)
        env = make_env("metaworld", image_size=64)
        tasks = resolve_tasks(env, args.tasks.split(","))
        model = Policy.from_pretrained(args.checkpoint)
        # The reference first, then the longest delay (where the modes differ most).
        rank = {"sync": 0, "naive": 1, "rtc": 2, "ensemble": 3}
        todo = sorted({source_of(m, d) for m in args.modes.split(",") for d in delays},
                      key=lambda c: (c[0] != "sync", -c[1], rank[c[0]]))
        for mode, delay in todo:
            path = out / f"{mode}_d{delay}.json"
            if path.exists():
                continue
            result = run_config(args, mode, delay, model, env, tasks)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            tmp.replace(path)
        env.close()
    print(f"\n{args.checkpoint}: {args.episodes} unseen layouts per task (seed {args.seed} on), "
          f"execute_steps {args.execute_steps}, max_steps {args.max_steps or 'the env default'}, tasks {args.tasks}")
    report(out, delays)


if __name__ == "__main__":
    sys.exit(main())
