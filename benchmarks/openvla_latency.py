"""OpenVLA action latency: our predict_action (KV cache / no cache) vs transformers' `generate`, and OFT.

OpenVLA decodes its 7 action tokens one at a time. We time, on the same weights and
observation (batch 1, one camera, 224 px DinoSigLIP-shaped vision, fp32, 2 threads):
  * ours, KV cache: prefill once, then one token per step (what `predict_action` does);
  * ours, no cache: the whole sequence re-run for every token;
  * reference: the same image features fed to transformers' `LlamaForCausalLM.generate`
    (greedy, 7 new tokens), which is what OpenVLA's HF `predict_action` calls;
  * OpenVLA-OFT with the same backbone: one forward pass for a chunk of 8 x 7 actions.
Ours runs with its defaults, including `prepack_weights` (every large linear layer through
oneDNN with its weight packed once); the "unpacked" rows switch that off (torch's default
F.linear, as the reference uses).
Each figure is the median of --runs calls after --warmup calls, the variants interleaved
so that background load hits them alike. `--clock cpu` times the CPU seconds of this
process instead of wall time, which a shared machine disturbs far less (use it with
--threads 1); `--dtype bf16` runs the models in bfloat16 (AMX on this CPU).

    .venv/bin/python benchmarks/openvla_latency.py                  # tiny and ~120M configs
    .venv/bin/python benchmarks/openvla_latency.py --configs 120m --runs 5 --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import vla_core

CONFIGS: dict[str, dict[str, Any]] = {
    # The test-suite size: overheads dominate.
    "tiny": {
        "image_size": 28,
        "timm_overrides": [{"embed_dim": 32, "depth": 3, "num_heads": 2, "patch_size": 7}] * 2,
        "vision_dim": 64,
        "text_config": {"vocab_size": 384, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 4},
    },
    # OpenVLA's shape scaled down: two 224 px / patch 14 ViTs (256 patches each, fused), an
    # 8-layer LLaMA of width 768 with OpenVLA's 32064-token vocabulary.
    "120m": {
        "image_size": 224,
        "timm_overrides": [{"embed_dim": 256, "depth": 6, "num_heads": 4}] * 2,
        "vision_dim": 512,
        "text_config": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 8,
                        "num_attention_heads": 12, "num_key_value_heads": 12},
    },
}
PROMPT_TOKENS = 20
ACTION_DIM = 7


def specs(size: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    vision = {"type": "PrismaticVisionBackbone", "image_sizes": [size["image_size"]] * 2,
              "timm_overrides": size["timm_overrides"]}
    width = size["text_config"]["hidden_size"]
    common = {"vision_backbone": vision, "text_config": size["text_config"],
              "projector": {"type": "PrismaticProjector", "in_dim": size["vision_dim"], "out_dim": width}}
    openvla = {"type": "OpenVLA", "action_dim": ACTION_DIM, **common}
    oft = {"type": "OpenVLAOFT", "action_dim": ACTION_DIM, "chunk_size": 8, **common,
           "vla_head": {"type": "L1RegressionActionHead", "input_dim": width, "hidden_dim": width,
                        "action_dim": ACTION_DIM, "chunk_size": 8}}
    return openvla, oft


def timed(fn: Callable[[], Any], samples: list[float], clock: Callable[[], float]) -> Any:
    start = clock()
    result = fn()
    samples.append(clock() - start)
    return result


def run(name: str, runs: int, warmup: int, clock: Callable[[], float], dtype: torch.dtype) -> None:
    openvla_spec, oft_spec = specs(CONFIGS[name])
    torch.manual_seed(0)
    vla = vla_core.build_vla(openvla_spec).eval().to(dtype)
    oft = vla_core.build_vla(oft_spec).eval().to(dtype)
    size = CONFIGS[name]["image_size"]
    g = torch.Generator().manual_seed(0)
    obs = {
        "images": torch.randn(1, 1, 3, size, size, generator=g).to(dtype),
        "img_masks": torch.ones(1, 1, dtype=torch.bool),
        "lang_tokens": torch.randint(3, 200, (1, PROMPT_TOKENS), generator=g),
        "lang_masks": torch.ones(1, PROMPT_TOKENS, dtype=torch.bool),
        "states": torch.zeros(1, 8),
    }
    obs["lang_tokens"][:, 0] = 1
    llm = vla.language_model
    llm.generation_config.eos_token_id = None

    def reference() -> torch.Tensor:
        embeds, mask, _ = vla.multimodal_inputs(obs["images"], obs["lang_tokens"], obs["lang_masks"], obs["img_masks"])
        out = llm.generate(inputs_embeds=embeds, attention_mask=mask.long(), max_new_tokens=ACTION_DIM,
                           do_sample=False, pad_token_id=0)
        return vla.action_tokenizer.decode(out[:, -ACTION_DIM:]).unsqueeze(1)

    def unpacked(model: Any, **kwargs: Any) -> torch.Tensor:
        model.prepack_weights = False
        try:
            return model.predict_action(**obs, **kwargs)
        finally:
            model.prepack_weights = True

    variants: dict[str, Callable[[], Any]] = {
        "ours, KV cache": lambda: vla.predict_action(**obs, use_kv_cache=True),
        "ours, KV cache, unpacked": lambda: unpacked(vla, use_kv_cache=True),
        "ours, no cache": lambda: vla.predict_action(**obs, use_kv_cache=False),
        "reference: transformers generate": reference,
        "OFT, parallel decoding (8 x 7)": lambda: oft.predict_action(**obs),
        "OFT, unpacked": lambda: unpacked(oft),
    }
    samples: dict[str, list[float]] = {key: [] for key in variants}
    results: dict[str, Any] = {}
    with torch.inference_mode():
        for index in range(warmup + runs):
            for key, fn in variants.items():
                if index < warmup:
                    results[key] = fn()
                else:
                    timed(fn, samples[key], clock)
    same = torch.equal(results["ours, KV cache"], results["reference: transformers generate"])
    same_nocache = torch.equal(results["ours, KV cache"], results["ours, no cache"])
    same_unpacked = torch.equal(results["ours, KV cache"], results["ours, KV cache, unpacked"])
    oft_diff = (results["OFT, parallel decoding (8 x 7)"] - results["OFT, unpacked"]).abs().max().item()
    medians = {key: statistics.median(values) * 1000 for key, values in samples.items()}
    ref_ms = medians["reference: transformers generate"]
    print(f"\n### {name}: {vla.num_parameters() / 1e6:.1f}M parameters, {PROMPT_TOKENS} prompt tokens, "
          f"{vla.vision_backbone.num_patches} patches; actions identical to reference: {same}, "
          f"cache == no cache: {same_nocache}, packed == unpacked: {same_unpacked}; "
          f"OFT packed vs unpacked max abs diff {oft_diff:.1e}\n")
    print("| variant | median ms | x reference time | action values / s |")
    print("|---|---|---|---|")
    for key, ms in medians.items():
        values = 8 * ACTION_DIM if key.startswith("OFT") else ACTION_DIM
        print(f"| {key} | {ms:.1f} | {ms / ref_ms:.2f} | {values / (ms / 1000):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    print(f"torch {torch.__version__}, {args.threads} threads, {args.dtype}, batch 1, clock: {args.clock}")
    for name in args.configs:
        run(name, args.runs, args.warmup, clock, dtype)


if __name__ == "__main__":
    main()
