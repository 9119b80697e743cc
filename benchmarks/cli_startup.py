"""CLI start-up and import cost: `vla list-components` against a bare entry-point scan.

    .venv/bin/python benchmarks/cli_startup.py [--runs 10]

Prints the median wall time over N runs of each command (fresh processes, interleaved
so that load on a shared machine hits every command alike), next to two references
measured in the same run: the bare interpreter start-up and a bare
`importlib.metadata.entry_points()` scan of vla's entry-point groups (what listing
cannot avoid). The ratio against the scan is the figure to compare across machines;
the target is `vla list-components` within 1.5x of it. Also checks torch stays
unimported by listing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
KINDS = ("vlas", "vlm_backbones", "vision_backbones", "llm_backbones", "projectors", "heads", "processors",
         "datasets", "envs")
# One scan, selecting every group in memory: the cheapest way to read them all.
BARE_SCAN = (
    "from importlib.metadata import entry_points; eps = entry_points(); "
    f"rows = [ep for g in {[f'vla.{k}' for k in KINDS]!r} for ep in eps.select(group=g)]"
)
SCAN = "bare entry-point scan (reference)"
COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    SCAN: [sys.executable, "-c", BARE_SCAN],
    "import vla_core": [sys.executable, "-c", "import vla_core"],
    "import vla_core; list_components()": [sys.executable, "-c", "import vla_core; vla_core.list_components()"],
    "vla --help": [str(BIN / "vla"), "--help"],
    "vla list-components --plain": [str(BIN / "vla"), "list-components", "--plain"],
    "vla list-components --json": [str(BIN / "vla"), "list-components", "--json"],
}


def median_wall_times(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median seconds per command; run i of every command before run i + 1 of any."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    probe = "import sys, vla_core; vla_core.list_components(); print('torch' in sys.modules)"
    torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    results = median_wall_times(COMMANDS, args.runs)
    base, scan = results["python -c pass (reference)"], results[SCAN]
    print(f"{'command':40s} {'median s':>9s} {'x python':>9s} {'x scan':>7s}")
    for name, seconds in results.items():
        print(f"{name:40s} {seconds:9.3f} {seconds / base:9.1f} {seconds / scan:7.2f}")
    ratio = results["vla list-components --json"] / scan
    print(f"vla list-components --json / bare scan: {ratio:.2f}x (target <= 1.5x)")
    print(f"torch imported by listing: {torch_loaded}")


if __name__ == "__main__":
    main()
