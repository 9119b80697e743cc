"""Training throughput of `vla train` (the engine) against a plain PyTorch loop.

    .venv/bin/python benchmarks/train_throughput.py [--models tiny,100m] [--steps 10] [--warmup 4] [--threads 1]
    .venv/bin/python benchmarks/train_throughput.py --models quickstart --batch-size 32 --processes 1

For each model (a tiny LlavaVLA, the `make demo` one from configs/quickstart.yaml and a
~100M-parameter one: SigLIP vision encoder + MLP projector + Qwen2 decoder + MLP action
head) and each precision (fp32, bf16 autocast; `auto` resolves as vla_core.precision says
for this machine, printed first) it
measures, each in a fresh process on the same LeRobot v3.0 dataset (written here with
LeRobotWriter, read by LeRobotDataset through VLAProcessor):

  * reference: a hand-written loop (DataLoader, forward, backward, clipping, AdamW) on 1 process;
  * engine, 1 process: `Trainer` (sampler, accumulation, clipping, metrics, checkpoints);
  * engine, 2 processes: `Trainer` under torchrun, FSDP2 over gloo.

Samples/s is the median over the steps after `--warmup` (global samples: both processes
together). CPU ms/sample is the median CPU time of a step (summed over the processes) per
sample: a busy shared machine disturbs it much less than wall time. Params+AdamW is what
one process holds of the parameters and optimizer state (FSDP2 shards both). Peak RSS is
the largest resident set of one process (ru_maxrss), until the last training step and
for the whole run (the final checkpoint gathers the full state on rank 0). Every process runs `--threads` intra-op
threads (default 1, so 2 processes use twice the cores of 1: data-parallel scaling; on a
busy machine 2 threads in one process mostly wait for each other on small ops). The
engine saves one checkpoint at the end; its time is not part of any step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CAMERA = "observation.images.top"
STATE_DIM, ACTION_DIM, CHUNK = 8, 7, 8


def model_spec(name: str) -> dict[str, Any]:
    """The VLA spec of a benchmark model, with its VLAProcessor."""
    if name == "tiny":
        vision = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "image_size": 64, "patch_size": 16}
        llm = {"vocab_size": 256, "hidden_size": 96, "intermediate_size": 192, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2}
        image_size, width, head_hidden = 64, (64, 96), 128
    elif name == "100m":
        vision = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6, "num_attention_heads": 6,
                  "image_size": 112, "patch_size": 16}
        llm = {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 10,
               "num_attention_heads": 12, "num_key_value_heads": 4}
        image_size, width, head_hidden = 112, (384, 768), 512
    elif name == "quickstart":  # configs/quickstart.yaml's model, with this dataset's state/action widths
        import yaml

        spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/quickstart.yaml").read_text())["model"]
        spec["vla_head"].update(state_dim=STATE_DIM, action_dim=ACTION_DIM, chunk_size=CHUNK)
        spec["processor"].update(max_state_dim=STATE_DIM, max_action_dim=ACTION_DIM, chunk_size=CHUNK)
        return spec
    else:
        raise SystemExit(f"unknown model {name!r}: use tiny, quickstart or 100m")
    vision["vision_use_head"] = False  # the VLA reads patch features; SigLIP's pooling head would be dead weight
    return {
        "type": "LlavaVLA",
        "vision_backbone": {"type": "TransformersVisionBackbone", "model_type": "siglip_vision_model",
                            "config": vision},
        "projector": {"type": "MLPProjector", "in_dim": width[0], "out_dim": width[1]},
        "llm_backbone": {"type": "TransformersLLMBackbone", "model_type": "qwen2", "config": llm},
        "vla_head": {"type": "MLPActionHead", "input_dim": width[1], "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
                     "chunk_size": CHUNK, "hidden_dim": head_hidden},
        "processor": {"type": "VLAProcessor", "image_size": image_size, "max_lang_len": 12,
                      "max_state_dim": STATE_DIM, "max_action_dim": ACTION_DIM, "chunk_size": CHUNK},
    }


def write_dataset(root: Path, image_size: int, episodes: int = 8, length: int = 40) -> None:
    """A LeRobot v3.0 dataset of random-walk episodes with one inline-PNG camera."""
    import numpy as np

    from vla_core.data.lerobot_writer import LeRobotWriter

    features = {
        CAMERA: {"dtype": "image", "shape": [image_size, image_size, 3]},
        "observation.state": {"dtype": "float32", "shape": [STATE_DIM]},
        "action": {"dtype": "float32", "shape": [ACTION_DIM]},
    }
    rng = np.random.default_rng(0)
    writer = LeRobotWriter.create(root, fps=10, features=features, robot_type="benchmark_arm")
    for episode in range(episodes):
        state = rng.normal(size=STATE_DIM).astype(np.float32)
        for _ in range(length):
            state = state + 0.1 * rng.normal(size=STATE_DIM).astype(np.float32)
            image = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
            action = rng.normal(size=ACTION_DIM).astype(np.float32)
            frame = {CAMERA: image, "observation.state": state, "action": action}
            writer.add_frame(frame, task=f"move the arm to target {episode % 4}")
        writer.save_episode()
    writer.finalize()


def run_config(model: str, dataset: Path, output_dir: Path, precision: str, steps: int, batch_size: int) -> dict:
    return {
        "model": model_spec(model),
        "data": {"type": "LeRobotDataset", "root": str(dataset), "chunk_size": CHUNK},
        "train": {"steps": steps, "batch_size": batch_size, "precision": precision, "save_every": 10**6,
                  "log_every": 10**6, "lr": 1e-4, "seed": 0},
        "output_dir": str(output_dir),
    }


# ---- workers (run in fresh processes) ------------------------------------------------------
class StepProbe:
    """Trainer callback: this process's CPU seconds per optimizer step, the bytes of
    parameters + optimizer state it holds (after step 1), and its peak RSS before the
    final checkpoint (which gathers the full state on rank 0)."""

    def __init__(self) -> None:
        self.cpu_times: list[float] = []
        self.last = time.process_time()
        self.state_bytes = 0
        self.train_rss_mib = 0.0

    def on_train_start(self, trainer: Any) -> None:
        self.last = time.process_time()

    def on_step_end(self, trainer: Any, step: int, metrics: dict) -> None:
        now = time.process_time()
        self.cpu_times.append(now - self.last)
        if step == 1:
            from vla_core.engine.fsdp import local_shard_bytes

            self.state_bytes = sum(local_shard_bytes(trainer.model, trainer.optimizer).values())
        self.train_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.last = time.process_time()


def worker_engine(config_path: Path, result_path: Path, threads: int) -> None:
    import torch

    from vla_core.config.run import validate_run_config
    from vla_core.engine.trainer import Trainer

    torch.set_num_threads(threads)
    config = validate_run_config(json.loads(config_path.read_text()))
    probe = StepProbe()
    Trainer(config, callbacks=[probe]).fit()
    rank = int(os.environ.get("RANK", "0"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"peak_rss_mib": peak, "cpu_times": probe.cpu_times, "train_rss_mib": probe.train_rss_mib,
              "state_mib": probe.state_bytes / 2**20}
    Path(f"{result_path}.rank{rank}").write_text(json.dumps(result))


def worker_reference(config_path: Path, result_path: Path, threads: int) -> None:
    """The plain loop: same model, data, processor, batch size and gradient clipping; no engine."""
    import torch

    from vla_core.config.run import validate_run_config
    from vla_core.models.build import build_component, build_vla
    from vla_core.precision import resolve_precision

    torch.set_num_threads(threads)
    config = validate_run_config(json.loads(config_path.read_text()))
    torch.manual_seed(0)
    dataset = build_component("datasets", config.data)
    vla = build_vla(config.model)
    processor = build_component("processors", vla.processor_spec).fit(dataset)

    class Processed(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(dataset)

        def __getitem__(self, i: int) -> dict:
            return processor(dataset[i])

    loader = torch.utils.data.DataLoader(Processed(), batch_size=config.train.batch_size, shuffle=True,
                                         drop_last=True, collate_fn=processor.collate)
    optimizer = torch.optim.AdamW(vla.parameters(), lr=config.train.lr)
    autocast = resolve_precision(config.train.precision, "cpu").autocast()
    def forever():  # more steps than one epoch of the small dataset: start the next epoch
        while True:
            yield from loader

    times, cpu_times, batches = [], [], forever()
    vla.train()
    for _ in range(config.train.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        batch = next(batches)
        with autocast:
            loss = vla(**batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vla.parameters(), config.train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    state = sum(p.numel() * p.element_size() for p in vla.parameters()) + sum(
        v.numel() * v.element_size() for st in optimizer.state.values() for v in st.values() if v.numel() > 1
    )
    result = {"step_times": times, "cpu_times": cpu_times, "peak_rss_mib": peak, "train_rss_mib": peak,
              "state_mib": state / 2**20}
    Path(result_path).write_text(json.dumps(result))


# ---- driver ---------------------------------------------------------------------------------
def measure(kind: str, config: dict, workdir: Path, nproc: int, threads: int, warmup: int) -> dict[str, float]:
    tag = f"{kind}-{nproc}-{uuid.uuid4().hex[:6]}"  # a fresh output_dir per measurement
    config_path, result_path = workdir / f"{tag}.json", workdir / f"{tag}.result"
    config["output_dir"] = str(workdir / f"run-{tag}")
    config_path.write_text(json.dumps(config))
    worker = [str(Path(__file__).resolve()), "--worker", kind, str(config_path), str(result_path), str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *worker]
    else:
        command = [sys.executable, *worker]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    batch = config["train"]["batch_size"]
    if kind == "reference":
        ranks = [json.loads(result_path.read_text())]
        step_times = ranks[0]["step_times"]
    else:
        from vla_core.engine.metrics import read_metrics

        step_times = [r["step_time_s"] for r in read_metrics(config["output_dir"])]
        ranks = [json.loads(Path(f"{result_path}.rank{r}").read_text()) for r in range(nproc)]
    cpu_per_step = [sum(per_rank) for per_rank in zip(*(r["cpu_times"] for r in ranks), strict=True)]
    return {
        "samples_per_s": batch / statistics.median(step_times[warmup:]),
        "cpu_ms_per_sample": 1000 * statistics.median(cpu_per_step[warmup:]) / batch,
        "state_mib": max(r["state_mib"] for r in ranks),
        "train_rss_mib": max(r["train_rss_mib"] for r in ranks),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in ranks),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, config_path, result_path, threads = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
        (worker_reference if kind == "reference" else worker_engine)(config_path, result_path, threads)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,100m")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=4, help="first steps left out of the median")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--processes", default="1,2", help="engine runs on these numbers of processes")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    from vla_core.models.build import build_vla
    from vla_core.precision import describe_cpu, resolve_precision

    print(f"CPU: {describe_cpu()}; {resolve_precision('auto', 'cpu').describe()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vla-bench-") as tmp:
        workdir = Path(tmp)
        for model in args.models.split(","):
            spec = model_spec(model)
            image_size = spec["processor"]["image_size"]
            dataset = workdir / f"data-{model}"
            write_dataset(dataset, image_size)
            params = sum(p.numel() for p in build_vla(spec).parameters())
            for precision in args.precisions.split(","):
                config = run_config(model, dataset, workdir, precision, args.steps, args.batch_size)
                reference = measure("reference", dict(config), workdir, 1, args.threads, args.warmup)
                for nproc in [int(n) for n in args.processes.split(",")]:
                    engine = measure("engine", dict(config), workdir, nproc, args.threads, args.warmup)
                    rows.append({
                        "model": model, "params_m": params / 1e6, "precision": precision, "processes": nproc,
                        **engine, **{f"reference_{k}": v for k, v in reference.items()},
                        "ratio": engine["samples_per_s"] / reference["samples_per_s"],
                        "cpu_ratio": engine["cpu_ms_per_sample"] / reference["cpu_ms_per_sample"],
                        "load_average": os.getloadavg()[0],
                    })
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"batch {args.batch_size}, {args.steps} steps (median of the last {args.steps - args.warmup}), "
          f"{args.threads} thread(s) per process")
    print("| model | params | precision | processes | samples/s | CPU ms/sample | params+AdamW MiB/process "
          "| peak RSS MiB/process (training; with final checkpoint) | reference samples/s | reference CPU ms/sample "
          "| samples/s vs reference | CPU vs reference | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']:.1f}M | {r['precision']} | {r['processes']} "
              f"| {r['samples_per_s']:.2f} | {r['cpu_ms_per_sample']:.1f} | {r['state_mib']:.0f} "
              f"| {r['train_rss_mib']:.0f}; {r['peak_rss_mib']:.0f} "
              f"| {r['reference_samples_per_s']:.2f} | {r['reference_cpu_ms_per_sample']:.1f} "
              f"| {r['ratio']:.2f} | {r['cpu_ratio']:.2f} | {r['load_average']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
