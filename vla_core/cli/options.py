"""Options and reports shared by the inference commands (`predict`, `serve`, `eval`)."""

from __future__ import annotations

from typing import Any

import typer

PRECISION_OPTION = typer.Option(
    "auto",
    "--precision",
    help="auto (bf16 where the device computes it natively: CUDA Ampere+, CPUs with AMX or AVX512-BF16; else fp32), "
    "fp32 or bf16.",
)


def report_precision(choice: Any, console: Any = None) -> None:
    """Print the resolved precision (and the slow-bf16 warning) on stderr, one line each."""
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    console.print(choice.describe(), soft_wrap=True, highlight=False, markup=False)
    if choice.warning:
        console.print(f"warning: {choice.warning}", soft_wrap=True, highlight=False, markup=False)
