"""Where per-step metrics go: `<output_dir>/metrics.jsonl`, plugin sinks, a rich progress bar."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

METRICS_NAME = "metrics.jsonl"


class JsonlMetrics:
    """One JSON object per optimizer step, appended and flushed as it happens.

    On resume, records after the resumed step (written by the interrupted run after its
    last checkpoint) are dropped first, so the file reads as one uninterrupted run.
    """

    def __init__(self, output_dir: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(output_dir) / METRICS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= resume_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (kept open for the whole run)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf  # a torn last line from a killed run: drop it


def _plain(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the file stays valid."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (for scripts and tests)."""
    path = Path(output_dir) / METRICS_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ProgressDisplay:
    """A rich progress bar with loss, lr, samples/s and ETA; plain log lines when the
    console is not a terminal (CI logs, pipes)."""

    def __init__(self, total_steps: int, start_step: int, log_every: int, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.total, self.start, self.log_every = total_steps, start_step, log_every
        self.started = time.perf_counter()
        self.progress = None
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, stats="")
            self.progress.start()

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        stats = f"loss {metrics['loss']:.4f}  lr {metrics['lr']:.2e}  {metrics['samples_per_s']:.1f} samples/s"
        if self.progress is not None:
            self.progress.update(self.task, completed=step, stats=stats)
        elif step % self.log_every == 0 or step == self.total:
            done = step - self.start
            elapsed = time.perf_counter() - self.started
            eta = elapsed / max(done, 1) * (self.total - step)
            self.console.print(f"step {step}/{self.total}  {stats}  ETA {eta:.0f}s", highlight=False, soft_wrap=True)

    def print(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True, markup=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
