"""predict_action latency: FlowMatchingHead (the reference computation) vs FlowMatchingInferenceHead.

Same weights (the inference heads share the training head's tensors), same backbone features
and noise; batch 1, 4 Euler steps (GR00T N1.5's num_inference_timesteps), fp32, --threads
torch threads (default 1: on a shared 2-core machine two OpenMP threads wait on each other
for milliseconds per op). Each timing is the median of --runs calls after --warmup calls,
the heads interleaved call by call so background load hits them alike.

Columns: the training head; the inference head with weight packing off (what the caching
alone buys); the inference head as configured by default (cached + oneDNN-packed weights);
optionally (--compile) the inference head with `compile: true`; the inference head in bf16
(weights cast, AMX/AVX512-BF16 matmuls), with its error against the fp32 prediction.

    .venv/bin/python benchmarks/flow_head.py                         # tiny and GR00T N1.5 sizes
    .venv/bin/python benchmarks/flow_head.py --sizes tiny --compile --runs 20
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from vla_heads_flow.flow_matching_head import FlowMatchingHead
from vla_heads_flow.flow_matching_inference_head import FlowMatchingInferenceHead

SIZES: dict[str, dict[str, Any]] = {
    # the test-suite size: per-op overheads dominate
    "tiny": dict(backbone_embedding_dim=24, state_dim=6, action_dim=5, traj_length=4, hidden_size=20,
                 input_embedding_dim=16, num_layers=4, num_heads=2, vl_self_attention_layers=2,
                 vl_self_attention_heads=3, num_target_vision_tokens=3, max_num_embodiments=3, max_seq_len=8),
    # the released GR00T N1.5 action head (1.07B parameters): FlowMatchingHead's defaults
    "gr00t-n1.5": {},
}
# Backbone tokens the head reads: GR00T N1.5 with one 224 px camera gives 64 Eagle image tokens
# plus ~40-60 prompt tokens.
SEQ_LEN = {"tiny": 16, "gr00t-n1.5": 128}
BF16_TOLERANCE = 0.05  # max |bf16 - fp32| relative to max |fp32| over the predicted chunk


def timed(fn: Callable[[], torch.Tensor], samples: list[float]) -> torch.Tensor:
    start = time.perf_counter()
    out = fn()
    samples.append(time.perf_counter() - start)
    return out


def share_weights(
    head: FlowMatchingHead, config: dict[str, Any], dtype: torch.dtype = torch.float32, **kwargs: Any
) -> FlowMatchingInferenceHead:
    """An inference head built on the meta device that takes `head`'s tensors (cast to dtype)."""
    with torch.device("meta"):
        fast = FlowMatchingInferenceHead(**config, **kwargs)
    state = {k: v if v.dtype == dtype else v.to(dtype) for k, v in head.state_dict().items()}
    fast.load_state_dict(state, strict=True, assign=True)
    return fast.eval()


def bench_size(name: str, args: argparse.Namespace) -> dict[str, Any]:
    config = SIZES[name]
    torch.manual_seed(0)
    start = time.perf_counter()
    head = FlowMatchingHead(**config).eval()
    build_s = time.perf_counter() - start
    seq = args.seq_len or SEQ_LEN[name]
    g = torch.Generator().manual_seed(1)
    inputs = dict(
        input_features=torch.randn(1, seq, head.backbone_embedding_dim, generator=g),
        states=torch.randn(1, head.state_dim, generator=g),
        attention_mask=torch.ones(1, seq, dtype=torch.bool),
        noise=torch.randn(1, head.traj_length, head.action_dim, generator=g),
    )
    variants: dict[str, FlowMatchingInferenceHead] = {
        "no_pack": share_weights(head, config, prepack_weights=False),
        "fast": share_weights(head, config),
    }
    if args.compile:
        variants["compiled"] = share_weights(head, config, compile=True)
    row: dict[str, Any] = {"size": name, "params_m": sum(p.numel() for p in head.parameters()) / 1e6, "seq": seq,
                           "build_s": build_s}

    def run(heads: dict[str, Any]) -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {k: [] for k in heads}
        for i in range(args.warmup + args.runs):
            for key, h in heads.items():
                out = timed(lambda h=h: h.predict_action(**inputs), samples[key])
                row.setdefault(f"out_{key}", out)
            if i < args.warmup:
                for s in samples.values():
                    s.clear()
            print(f"  {name}: call {i + 1}/{args.warmup + args.runs}", flush=True)
        return samples

    samples = run({"reference": head, **variants})
    del variants
    gc.collect()
    bf16_samples = run({"bf16": share_weights(head, config, torch.bfloat16)})
    ref = statistics.median(samples["reference"])
    row["ms"] = {k: 1e3 * statistics.median(v) for k, v in {**samples, **bf16_samples}.items()}
    row["ratio"] = {k: ref * 1e3 / v for k, v in row["ms"].items()}
    expected = row["out_reference"]
    row["max_diff"] = {k: (row[f"out_{k}"].float() - expected).abs().max().item() for k in row["ms"]}
    row["bf16_rel"] = row["max_diff"]["bf16"] / expected.abs().max().item()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,gr00t-n1.5", help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=0, help="backbone tokens (default per size)")
    parser.add_argument("--compile", action="store_true", help="also time compile: true (slow to compile)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench_size(name, args) for name in args.sizes.split(",")]

    cols = ["reference", "no_pack", "fast", *(["compiled"] if args.compile else []), "bf16"]
    titles = {"reference": "FlowMatchingHead", "no_pack": "Inference, no packing", "fast": "FlowMatchingInferenceHead",
              "compiled": "Inference, compile", "bf16": "Inference bf16"}
    print(f"\nbatch 1, 4 Euler steps, fp32 unless noted, {args.threads} thread(s), median of {args.runs} "
          f"after {args.warmup} warm-up calls; ms (x FlowMatchingHead)\n")
    print("| size | params | S | " + " | ".join(titles[c] for c in cols) + " | max abs diff fp32 | bf16 rel. err |")
    print("|---|---|---|" + "---|" * len(cols) + "---|---|")
    for r in rows:
        cells = [f"{r['ms'][c]:.1f} (x{r['ratio'][c]:.2f})" for c in cols]
        fp32_diff = max(r["max_diff"][c] for c in cols if c != "bf16" and c != "reference")
        ok = "ok" if r["bf16_rel"] <= BF16_TOLERANCE else "EXCEEDS"
        params = f"{r['params_m']:.1f}M" if r["params_m"] >= 1 else f"{r['params_m'] * 1e3:.0f}K"
        print(f"| {r['size']} | {params} | {r['seq']} | " + " | ".join(cells)
              + f" | {fp32_diff:.1e} | {r['bf16_rel']:.3f} ({ok} <= {BF16_TOLERANCE}) |")


if __name__ == "__main__":
    main()
