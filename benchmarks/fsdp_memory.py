"""Host memory per process of sharded training: a ~300M-parameter VLA on 1 and on 2 processes (gloo, CPU).

    .venv/bin/python benchmarks/fsdp_memory.py [--steps 2] [--batch-size 2] [--processes 1,2] [--no-resume]

The model is a LlavaVLA: SigLIP (768 wide, 12 layers, 112 px images) -> MLP projector ->
Qwen2 (1024 wide, 16 layers, 32k vocabulary) -> MLP action head, trained in fp32 with
AdamW by `vla_core.engine.Trainer`, each run in a fresh process (under torchrun for 2),
saving one checkpoint at the end. Per process it reports:

  * load s: from `Trainer.fit()` to the first step (process group, dataset, building and
    sharding the model, materialising its weights);
  * peak RSS while training (ru_maxrss after the last step) and for the whole run (with
    the final checkpoint);
  * resume s / resume peak RSS: a second run that resumes from that checkpoint and trains
    one more step (the weights and AdamW state are read back);
  * baseline RSS: the process after importing torch, transformers and the engine (before
    `Trainer`): a constant of every process that no sharding can halve.

The figure the issue asks for is the ratio of the 2-process run's peak RSS per process
to the 1-process run's (the larger process of the two); printed next to it, the same
ratio with each run's baseline subtracted (what the model, its gradients and AdamW cost).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from train_throughput import ACTION_DIM, CHUNK, STATE_DIM, write_dataset  # noqa: E402


def model_spec() -> dict[str, Any]:
    """A ~300M-parameter LlavaVLA (SigLIP-B-sized vision, a 16-layer Qwen2)."""
    vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "image_size": 112, "patch_size": 16, "vision_use_head": False}
    llm = {"vocab_size": 32000, "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 16,
           "num_attention_heads": 16, "num_key_value_heads": 4}
    return {
        "type": "LlavaVLA",
        "vision_backbone": {"type": "TransformersVisionBackbone", "model_type": "siglip_vision_model",
                            "config": vision},
        "projector": {"type": "MLPProjector", "in_dim": 768, "out_dim": 1024},
        "llm_backbone": {"type": "TransformersLLMBackbone", "model_type": "qwen2", "config": llm},
        "vla_head": {"type": "MLPActionHead", "input_dim": 1024, "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
                     "chunk_size": CHUNK, "hidden_dim": 512},
        "processor": {"type": "VLAProcessor", "image_size": 112, "max_lang_len": 12, "max_state_dim": STATE_DIM,
                      "max_action_dim": ACTION_DIM, "chunk_size": CHUNK},
    }


class Probe:
    """Trainer callback: when the first step starts, and the peak RSS after the last step."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.load_s = 0.0
        self.train_rss_mib = 0.0

    def on_train_start(self, trainer: Any) -> None:
        self.load_s = time.perf_counter() - self.started

    def on_step_end(self, trainer: Any, step: int, metrics: dict) -> None:
        self.train_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's resident set size now (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(config_path: Path, result_path: Path, resume: str | None) -> None:
    import torch
    import transformers  # noqa: F401 - part of the baseline: the model's parts import it

    from vla_core.config.run import validate_run_config
    from vla_core.engine.trainer import Trainer

    baseline_mib = rss_mib()
    torch.set_num_threads(1)
    config = validate_run_config(json.loads(config_path.read_text()))
    probe = Probe()
    Trainer(config, callbacks=[probe], resume=resume).fit()
    rank = int(os.environ.get("RANK", "0"))
    result = {"load_s": probe.load_s, "train_rss_mib": probe.train_rss_mib, "baseline_mib": baseline_mib,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(f"{result_path}.rank{rank}").write_text(json.dumps(result))


def run(config: dict, workdir: Path, tag: str, nproc: int, resume: str | None = None) -> list[dict[str, float]]:
    """One training in fresh processes -> each rank's figures."""
    config_path, result_path = workdir / f"{tag}.json", workdir / f"{tag}.result"
    config_path.write_text(json.dumps(config))
    command = [str(Path(__file__).resolve()), "--worker", str(config_path), str(result_path), resume or ""]
    if nproc > 1:
        command = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *command]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{tag} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    ranks = [json.loads(Path(f"{result_path}.rank{r}").read_text()) for r in range(nproc)]
    print(f"{tag}: {time.perf_counter() - started:.0f} s wall, {json.dumps(ranks)}", file=sys.stderr, flush=True)
    return ranks


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] or None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--no-resume", action="store_true", help="skip the resumed runs")
    args = parser.parse_args()

    import torch

    from vla_core.models.build import build_vla

    with torch.device("meta"):
        params = sum(p.numel() for p in build_vla(model_spec()).parameters())
    rows = []
    with tempfile.TemporaryDirectory(prefix="vla-fsdp-memory-") as tmp:
        workdir = Path(tmp)
        dataset = workdir / "data"
        write_dataset(dataset, 112, episodes=2, length=20)
        for nproc in [int(n) for n in args.processes.split(",")]:
            output_dir = workdir / f"run-{nproc}"
            train = {"steps": args.steps, "batch_size": args.batch_size, "precision": "fp32", "save_every": 10**6,
                     "log_every": 10**6, "lr": 1e-4, "seed": 0}
            config = {"model": model_spec(), "data": {"type": "LeRobotDataset", "root": str(dataset),
                                                      "chunk_size": CHUNK},
                      "train": train, "output_dir": str(output_dir)}
            first = run(config, workdir, f"train-{nproc}", nproc)
            config["train"] = {**train, "steps": args.steps + 1}
            nan = [{"load_s": float("nan"), "peak_rss_mib": float("nan")}]
            resumed = nan if args.no_resume else run(config, workdir, f"resume-{nproc}", nproc, resume="auto")
            rows.append({"processes": nproc,
                         "load_s": max(r["load_s"] for r in first),
                         "train_rss_mib": max(r["train_rss_mib"] for r in first),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in first),
                         "baseline_mib": max(r["baseline_mib"] for r in first),
                         "resume_load_s": max(r["load_s"] for r in resumed),
                         "resume_peak_rss_mib": max(r["peak_rss_mib"] for r in resumed)})
    print(f"model: {params / 1e6:.0f}M parameters, fp32, AdamW; batch {args.batch_size}, {args.steps} steps, "
          "1 thread per process")
    print("| processes | baseline RSS MiB (imports) | load s | peak RSS MiB/process, training "
          "| peak RSS MiB/process, with checkpoint | resume load s | resume peak RSS MiB/process |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['processes']} | {r['baseline_mib']:.0f} | {r['load_s']:.1f} | {r['train_rss_mib']:.0f} "
              f"| {r['peak_rss_mib']:.0f} | {r['resume_load_s']:.1f} | {r['resume_peak_rss_mib']:.0f} |")
    if len(rows) == 2:
        one, two = rows
        print(f"2 / 1 processes, peak RSS per process: training {two['train_rss_mib'] / one['train_rss_mib']:.2f}, "
              f"with checkpoint {two['peak_rss_mib'] / one['peak_rss_mib']:.2f}, "
              f"resume {two['resume_peak_rss_mib'] / one['resume_peak_rss_mib']:.2f}")
        above = [(r["train_rss_mib"] - r["baseline_mib"]) for r in rows]
        print(f"without the baseline (peak - RSS after imports): training {above[1] / above[0]:.2f}")


if __name__ == "__main__":
    main()
