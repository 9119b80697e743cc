"""Serving latency over loopback: `vla serve`'s round trip against `Policy.act` in process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_latency.py CHECKPOINT [--requests 200]

1. One client, `--requests` sequential requests: p50/p99 of the round trip (PolicyClient ->
   PolicyServer in a background thread of this process -> reply) against p50/p99 of the
   same `Policy.act` called in process, interleaved so machine load hits both alike. The
   target is round trip / in-process <= 1.2 at p50.
2. `--clients` clients at once, `--per-client` requests each: errors, p50/p99 of the round
   trip, and whether every reply equals the in-process actions for the same noise.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_core.engine.policy import Policy
from vla_core.serving.checks import ObservationSpec
from vla_core.serving.client import PolicyClient
from vla_core.serving.server import PolicyServer
from vla_core.serving.service import PolicyService


def observation(policy: Policy, seed: int) -> dict[str, Any]:
    """A random observation of the checkpoint's own shapes (frames at the model's input size)."""
    rng = np.random.default_rng(seed)
    height, width = policy.processor.image_size
    return {
        "images": {cam: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for cam in policy.processor.cameras},
        "state": rng.normal(size=policy.processor.state_dim).astype(np.float32),
        "task": "open the drawer",
    }


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=50)
    args = parser.parse_args()

    policy = Policy.from_pretrained(args.checkpoint)
    noise_shape = (policy.processor.chunk_size, policy.processor.max_action_dim)
    noise = torch.randn(noise_shape, generator=torch.Generator().manual_seed(0))
    obs = observation(policy, 0)
    expected = policy.act(obs, noise=noise)
    service = PolicyService(policy, ObservationSpec.from_policy(policy))
    with PolicyServer(service, port=0) as server, PolicyClient(server.url) as client:
        for _ in range(10):  # warm-up: allocator, oneDNN primitives, the connection
            client.act(obs, noise=noise.numpy())
            policy.act(obs, noise=noise)
        remote, local = [], []
        for _ in range(args.requests):
            start = time.perf_counter()
            client.act(obs, noise=noise.numpy())
            remote.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            policy.act(obs, noise=noise)
            local.append((time.perf_counter() - start) * 1000)
        (r50, r99), (l50, l99) = percentiles(remote), percentiles(local)
        print(f"sequential, {args.requests} requests: round trip p50 {r50:.2f} ms p99 {r99:.2f} ms; "
              f"in process p50 {l50:.2f} ms p99 {l99:.2f} ms; ratio at p50 {r50 / l50:.2f}")

        times: list[float] = []
        errors: list[str] = []
        mismatches = [0]
        lock = threading.Lock()

        def robot() -> None:
            try:
                with PolicyClient(server.url, timeout=120) as robot_client:
                    for _ in range(args.per_client):
                        start = time.perf_counter()
                        actions = robot_client.act(obs, noise=noise.numpy())
                        elapsed = (time.perf_counter() - start) * 1000
                        with lock:
                            times.append(elapsed)
                            mismatches[0] += int(not np.array_equal(actions, expected))
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=robot) for _ in range(args.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        c50, c99 = percentiles(times) if times else (float("nan"), float("nan"))
        print(f"{args.clients} clients x {args.per_client} requests: {len(errors)} errors, {len(times)} replies, "
              f"{mismatches[0]} differ from in process; round trip p50 {c50:.1f} ms p99 {c99:.1f} ms; "
              f"{len(times) / wall:.1f} replies/s (median single-request model time {statistics.median(local):.2f} ms)")
        for error in errors[:3]:
            print("  error:", error)


if __name__ == "__main__":
    main()
