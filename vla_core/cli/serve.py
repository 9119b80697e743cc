"""`vla serve CHECKPOINT`: serve a trained policy to a robot over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from vla_core.cli.options import PRECISION_OPTION, report_precision


def serve_cmd(
    checkpoint: Path = typer.Argument(
        ..., help="Checkpoint directory (from `vla train` or `vla export`), or a run directory (its latest checkpoint)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    device: str = typer.Option("cpu", help="Where the model runs: cpu, cuda, cuda:1, ..."),
    precision: str = PRECISION_OPTION,
) -> None:
    """Serve `Policy.act` at http://HOST:PORT/act (see vla_core.serving.client.PolicyClient)."""
    from rich.console import Console

    from vla_core.bind import bind_error, check_bind_address
    from vla_core.devices import resolve_device
    from vla_core.engine.policy import Policy
    from vla_core.serving.metadata import policy_metadata
    from vla_core.serving.server import PolicyServer

    check_bind_address(host, port)  # flags first: a bad one fails before the model is loaded
    resolve_device(device)
    console = Console(stderr=True)
    with console.status(f"loading {checkpoint}"):
        policy = Policy.from_pretrained(checkpoint, device=device, precision=precision)
    report_precision(policy.precision, console)
    try:
        server = PolicyServer(policy, host=host, port=port, metadata=policy_metadata(policy, checkpoint))
    except OSError as exc:  # taken while the model loaded
        raise bind_error(exc, host, port) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this port can drive the robot.")
    console.print(f"serving {checkpoint} at {server.url}  (POST /act, GET /metadata; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
