"""Hook implementations of the example plugin: adds `vla example-head` to the CLI."""

from __future__ import annotations

from typing import Any

from vla_core.hooks import hookimpl


def example_head_cmd(chunk_size: int = 8, action_dim: int = 7) -> None:
    """Print the parameter count of an AttentionPoolingHead of the given size."""
    import typer

    from vla_example_head.attention_pooling_head import AttentionPoolingHead

    head = AttentionPoolingHead(input_dim=64, action_dim=action_dim, chunk_size=chunk_size)
    typer.echo(f"AttentionPoolingHead: {sum(p.numel() for p in head.parameters())} parameters")


@hookimpl
def vla_add_commands(app: Any) -> None:
    app.command("example-head")(example_head_cmd)
