"""`vla export CHECKPOINT`: a plain inference checkpoint (LoRA merged, no training state)."""

from __future__ import annotations

from pathlib import Path

import typer


def export_cmd(
    checkpoint: Path = typer.Argument(..., help="A checkpoint directory written by `vla train`."),
    merge_lora: Path | None = typer.Option(
        None, "--merge-lora", help="Write a checkpoint with the LoRA adapter merged into the weights here."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write an inference-only copy (no LoRA) here."),
) -> None:
    """Export weights, config and processor without optimizer state; --merge-lora folds a LoRA
    adapter into the weights so the result loads and runs like a model trained in full."""
    from vla_core.engine.export import export_checkpoint
    from vla_core.errors import ConfigError

    if (merge_lora is None) == (out is None):
        raise ConfigError("give exactly one of --merge-lora OUT (LoRA checkpoints) or --out OUT.")
    target = export_checkpoint(checkpoint, merge_lora or out, merge_lora=merge_lora is not None)
    typer.echo(f"wrote {target}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
