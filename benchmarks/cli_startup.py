"""CLI start-up and import cost: `vla list-components --json` and `import vla_core`.

    .venv/bin/python benchmarks/cli_startup.py [--runs 10]

Prints the median wall time over N runs of each command (fresh processes), next to the
bare Python interpreter start-up measured in the same run, and checks torch stays
unimported. Targets: list-components < 0.4 s, import vla_core < 0.3 s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    "import vla_core": [sys.executable, "-c", "import vla_core"],
    "import vla_core; list_components()": [sys.executable, "-c", "import vla_core; vla_core.list_components()"],
    "vla --help": [str(BIN / "vla"), "--help"],
    "vla list-components --json": [str(BIN / "vla"), "list-components", "--json"],
}


def median_wall_time(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    probe = "import sys, vla_core; vla_core.list_components(); print('torch' in sys.modules)"
    torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    results = {name: median_wall_time(cmd, args.runs) for name, cmd in COMMANDS.items()}
    base = results["python -c pass (reference)"]
    print(f"{'command':40s} {'median s':>9s} {'x python':>9s}")
    for name, seconds in results.items():
        print(f"{name:40s} {seconds:9.3f} {seconds / base:9.1f}")
    print(f"torch imported by listing: {torch_loaded}")


if __name__ == "__main__":
    main()
