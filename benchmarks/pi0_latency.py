"""pi0 sampling latency: our PI0FlowMatching.predict_action vs transformers' PI0 sample_actions.

Same weights (a random transformers PI0 saved and loaded through `vla_core.load_pretrained`),
same observation and noise; batch 1, one camera, 10 Euler steps, fp32, 2 threads (--threads).
Ours runs with its defaults (prefix cache, fused expert weights, weights packed for oneDNN);
"ours unpacked" is the same sampler with prepack_weights off (torch's default F.linear). Each
timing is the median of --runs calls after --warmup calls, the two models interleaved so
that background load hits both alike. Also: our sampler without the prefix cache (the
prefix recomputed at every step), to show what the cache buys, and the time of the
prefix alone (images + instruction through the VLM, run once per call by both): the
part of a call that the denoising loop's optimisations cannot touch, and one denoising
step of each loop.

    .venv/bin/python benchmarks/pi0_latency.py            # tiny and ~100M configs
    .venv/bin/python benchmarks/pi0_latency.py --threads 1
    .venv/bin/python benchmarks/pi0_latency.py --configs tiny --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

CONFIGS: dict[str, dict[str, Any]] = {
    # The test-suite size: overheads dominate.
    "tiny": {
        "vlm_config": {
            "text_config": {"model_type": "gemma", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 1000},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                              "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
                              "vision_use_head": False},
            "projection_dim": 64, "image_token_id": 1000,
        },
        "dit_config": {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 1, "head_dim": 16},
        "chunk_size": 50, "max_state_dim": 32, "max_action_dim": 32,
    },
    # pi0's shape scaled down to ~100M parameters: SigLIP 224/16 (196 image tokens),
    # an 8-layer Gemma VLM (width 512, MLP x8 as Gemma 2B) and a width-256 expert (MLP x4 as Gemma 300M).
    "100m": {
        "vlm_config": {
            "text_config": {"model_type": "gemma", "hidden_size": 512, "intermediate_size": 4096,
                            "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 64,
                            "vocab_size": 32000},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 384, "intermediate_size": 1536,
                              "num_hidden_layers": 6, "num_attention_heads": 6, "image_size": 224, "patch_size": 16,
                              "vision_use_head": False},
            "projection_dim": 512, "image_token_id": 32000,
        },
        "dit_config": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 8,
                       "num_key_value_heads": 1, "head_dim": 64},
        "chunk_size": 50, "max_state_dim": 32, "max_action_dim": 32,
    },
}
PROMPT_TOKENS = 16


def median_ms(fn: Callable[[], Any], samples: list[float]) -> None:
    start = time.perf_counter()
    fn()
    samples.append((time.perf_counter() - start) * 1000.0)


def run_config(name: str, warmup: int, runs: int, nocache_runs: int) -> dict[str, Any]:
    from transformers import PI0Config, PI0ForConditionalGeneration
    from vla_paligemma.joint_attention import expert_block, prefix_cache

    import vla_core
    from vla_core.models.packed_linear import packed_linears

    torch.manual_seed(0)
    spec = CONFIGS[name]
    reference = PI0ForConditionalGeneration(PI0Config(**spec)).eval()
    with torch.no_grad():  # trained-looking norms instead of the all-zero initial ones
        for param_name, param in reference.named_parameters():
            if "norm" in param_name:
                param.normal_(0.0, 0.1)
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        ours = vla_core.load_pretrained(directory)
        unpacked = vla_core.load_pretrained(directory)  # its own instance: no cache rebuilt between the two
    unpacked.prepack_weights = False
    params = sum(p.numel() for p in reference.parameters())

    vlm = spec["vlm_config"]
    image_size = vlm["vision_config"]["image_size"]
    tokens_per_image = (image_size // vlm["vision_config"]["patch_size"]) ** 2
    g = torch.Generator().manual_seed(0)
    images = torch.rand(1, 1, 3, image_size, image_size, generator=g) * 2 - 1
    img_masks = torch.ones(1, 1, dtype=torch.bool)
    lang = torch.randint(1, vlm["text_config"]["vocab_size"], (1, PROMPT_TOKENS), generator=g)
    lang_masks = torch.ones(1, PROMPT_TOKENS, dtype=torch.bool)
    state = torch.randn(1, spec["max_state_dim"], generator=g)
    noise = torch.randn(1, spec["chunk_size"], spec["max_action_dim"], generator=g)
    input_ids = torch.cat([torch.full((1, tokens_per_image), vlm["image_token_id"]), lang], dim=1)
    attention_mask = torch.ones_like(input_ids)

    def reference_call() -> torch.Tensor:
        return reference.sample_actions(state=state, input_ids=input_ids, pixel_values=images, noise=noise,
                                        attention_mask=attention_mask, pixel_attention_mask=img_masks, num_steps=10)

    def ours_call(cache: bool = True, packed: bool = True) -> torch.Tensor:
        model = ours if packed else unpacked
        return model.predict_action(images, lang, lang_masks, img_masks, state, noise=noise, num_steps=10,
                                   use_prefix_cache=cache)

    def reference_prefix() -> Any:  # what sample_actions runs once before its loop
        embeds = reference.model.embed_prefix(input_ids, images, img_masks)
        return reference.model.vlm(inputs_embeds=embeds, attention_mask=attention_mask,
                                   position_ids=attention_mask.cumsum(-1) - 1,
                                   token_type_ids=torch.zeros_like(attention_mask), use_cache=True)

    def ours_prefix() -> Any:  # the same part of predict_action
        with packed_linears(ours):
            embeds, pad_mask = ours.vlm_backbone.embed_prefix(images, img_masks, lang, lang_masks)
            return prefix_cache(ours.vlm_backbone, embeds, pad_mask, embeds.shape[1] + 1 + spec["chunk_size"],
                                ours.fused_vlm_layers())

    # One denoising step of each loop, against an already computed prefix.
    time_tensor = torch.full((1,), 0.5)
    with torch.inference_mode():
        ref_cache = reference_prefix().past_key_values
        prefix_len = ref_cache.get_seq_length()
        embeds, pad_mask = ours.vlm_backbone.embed_prefix(images, img_masks, lang, lang_masks)
        our_cache, rotary, mask = ours._prepare_cache(embeds, pad_mask, state)
        fused = ours.fused_expert_layers()
        time_term = ours.step_conditioning(ours.time_embedding(time_tensor)[None])[0][0]

    def reference_step() -> torch.Tensor:  # the body of sample_actions' loop
        out = reference(state=state, noise=noise, timestep=time_tensor, pixel_attention_mask=img_masks,
                        attention_mask=attention_mask, past_key_values=ref_cache)
        ref_cache.crop(prefix_len - ref_cache.get_seq_length())
        return out.logits

    def ours_step() -> torch.Tensor:  # the body of predict_action's loop
        with packed_linears(ours):
            tokens = ours.action_tokens(noise, time_term)
            hidden = expert_block(ours.llm_expert, our_cache, tokens, rotary, mask, None, fused)
            return ours.action_out_proj(ours.llm_expert.final_norm(hidden))

    with torch.inference_mode():
        expected = reference_call()
        max_diff = (expected - ours_call()).abs().max().item()
        unpacked_diff = (expected - ours_call(packed=False)).abs().max().item()
        for _ in range(warmup):
            reference_call()
            ours_call()
            ours_call(packed=False)
        ref_ms: list[float] = []
        ours_ms: list[float] = []
        unpacked_ms: list[float] = []
        nocache_ms: list[float] = []
        ref_prefix_ms: list[float] = []
        ours_prefix_ms: list[float] = []
        ref_step_ms: list[float] = []
        ours_step_ms: list[float] = []
        for i in range(runs):
            median_ms(reference_call, ref_ms)
            median_ms(ours_call, ours_ms)
            median_ms(lambda: ours_call(packed=False), unpacked_ms)
            median_ms(reference_step, ref_step_ms)
            median_ms(ours_step, ours_step_ms)
            if i < nocache_runs:
                median_ms(lambda: ours_call(False), nocache_ms)
                median_ms(reference_prefix, ref_prefix_ms)
                median_ms(ours_prefix, ours_prefix_ms)
    paired = [o / r for o, r in zip(ours_ms, ref_ms, strict=True)]
    return {
        "config": name,
        "transformers_min": min(ref_ms),
        "ours_min": min(ours_ms),
        "paired_ratio": statistics.median(paired),
        "params": params,
        "prefix": tokens_per_image + PROMPT_TOKENS,
        "transformers": statistics.median(ref_ms),
        "ours": statistics.median(ours_ms),
        "unpacked": statistics.median(unpacked_ms),
        "nocache": statistics.median(nocache_ms),
        "ref_prefix": statistics.median(ref_prefix_ms),
        "ours_prefix": statistics.median(ours_prefix_ms),
        "ref_step": statistics.median(ref_step_ms),
        "ours_step": statistics.median(ours_step_ms),
        "max_diff": max(max_diff, unpacked_diff),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--nocache-runs", type=int, default=5, help="runs of the (slow) no-cache sampler")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.2f} at start")
    rows = [run_config(name, args.warmup, args.runs, args.nocache_runs) for name in args.configs]
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print("| config | params | prefix tokens | transformers ms | ours ms | ours / transformers "
          "| paired ratio | min ms (transformers / ours) | ours unpacked ms (/ transformers) | ours no-cache ms "
          "| cache gain (no cache / cache) | prefix ms (transformers / ours) | one step ms (transformers / ours) "
          "| max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['params'] / 1e6:.1f}M | {r['prefix']} | {r['transformers']:.1f} | {r['ours']:.1f} "
              f"| {r['ours'] / r['transformers']:.2f} | {r['paired_ratio']:.2f} "
              f"| {r['transformers_min']:.1f} / {r['ours_min']:.1f} "
              f"| {r['unpacked']:.1f} ({r['unpacked'] / r['transformers']:.2f}) | {r['nocache']:.1f} "
              f"| {r['nocache'] / r['ours']:.2f} | {r['ref_prefix']:.1f} / {r['ours_prefix']:.1f} "
              f"| {r['ref_step']:.1f} / {r['ours_step']:.1f} | {r['max_diff']:.1e} |")
    print("\nms: medians of the interleaved runs; paired ratio: median over runs of ours / transformers in the same"
          "\npair (robust to load drifting during the run); min: the least-disturbed run of each; ours unpacked:"
          "\nprepack_weights off (torch's default F.linear).")

if __name__ == "__main__":
    main()
