"""`vla serve CHECKPOINT`: serve a trained policy to robots over openpi's websocket protocol, or to the
vla-eval benchmark harness over its own (`--protocol vla-eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vla_core.cli.options import PRECISION_OPTION, report_precision

if TYPE_CHECKING:
    from rich.console import Console

MAX_MESSAGE_MB, IDLE_TIMEOUT_S = 32.0, 300.0  # defaults of the openpi server's limits


def serve_cmd(
    checkpoint: Path = typer.Argument(
        ..., help="Checkpoint directory (from `vla train` or `vla export`), or a run directory (its latest checkpoint)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    device: str = typer.Option("cpu", help="Where the model runs: cpu, cuda, cuda:1, ..."),
    precision: str = PRECISION_OPTION,
    key: list[str] = typer.Option(
        [], "--key", help="WIRE=TARGET: feed message key WIRE to a camera, state, task, embodiment_id or noise "
        "(repeatable; adds to the checkpoint's serving.json and the protocol's default keys)."
    ),
    api_key: str = typer.Option(
        None, envvar="VLA_API_KEY", help="Require 'Authorization: Api-Key KEY' (openpi-client's api_key)."
    ),
    frame_size: str = typer.Option("warn", help="A frame far from the model's input size: warn (once) or refuse."),
    max_message_mb: float = typer.Option(MAX_MESSAGE_MB, help="The largest request accepted, in MiB."),
    idle_timeout: float = typer.Option(
        IDLE_TIMEOUT_S, help="Seconds a connection may stay silent before it is closed."
    ),
    seed: int = typer.Option(0, help="Seed of the sampling noise when a request brings none (per episode)."),
    protocol: str = typer.Option(
        "openpi", help="openpi (robots: openpi-client, vla's PolicyClient) or vla-eval (the vla-eval benchmark "
        "harness: LIBERO, SimplerEnv, ...; pip install 'vla-core[vla-eval]')."
    ),
    execute_steps: int | None = typer.Option(
        None, "--execute-steps", "-k", help="vla-eval: actions executed per predicted chunk (k of T); default: all T."
    ),
) -> None:
    """Serve `Policy.act` at ws://HOST:PORT (openpi-client's WebsocketClientPolicy or vla's PolicyClient;
    the vla-eval harness with --protocol vla-eval)."""
    from rich.console import Console

    from vla_core.bind import bind_error, check_bind_address
    from vla_core.devices import resolve_device
    from vla_core.engine.policy import Policy
    from vla_core.errors import ConfigError
    from vla_core.serving.checks import ObservationSpec
    from vla_core.serving.keys import load_checkpoint_key_map, parse_key_options
    from vla_core.serving.metadata import policy_metadata
    from vla_core.serving.server import PolicyServer
    from vla_core.serving.service import PolicyService

    if frame_size not in ("warn", "refuse"):
        raise ConfigError(f"--frame-size must be warn or refuse, got {frame_size!r}.")
    _check_protocol_options(protocol, api_key, max_message_mb, idle_timeout, execute_steps)
    check_bind_address(host, port)  # flags first: a bad one fails before the model is loaded
    resolve_device(device)
    console = Console(stderr=True)
    with console.status(f"loading {checkpoint}"):
        policy = Policy.from_pretrained(checkpoint, device=device, precision=precision)
    report_precision(policy.precision, console)
    checkpoint = policy.checkpoint or checkpoint  # a run directory stands for its latest checkpoint
    keys = (load_checkpoint_key_map(checkpoint), parse_key_options(key))
    if protocol == "vla-eval":
        _serve_vla_eval(policy, checkpoint, keys, frame_size, seed, execute_steps, host, port, console)
        return
    spec = ObservationSpec.from_policy(policy, keys, frame_size=frame_size)  # type: ignore[arg-type]
    service = PolicyService(policy, spec, policy_metadata(policy, checkpoint), seed=seed)
    server = PolicyServer(
        service, host=host, port=port, api_key=api_key, max_message_bytes=int(max_message_mb * 2**20),
        idle_timeout=idle_timeout,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this port can drive the robot.")

    def ready(server: PolicyServer) -> None:
        console.print(f"serving {checkpoint} at {server.url}  (GET /healthz; Ctrl-C stops)", soft_wrap=True)

    try:
        server.serve_forever(on_ready=ready)
    except OSError as exc:  # the port was taken while the model loaded
        raise bind_error(exc, host, port) from None
    console.print("stopped")


def _check_protocol_options(
    protocol: str, api_key: str | None, max_message_mb: float, idle_timeout: float, execute_steps: int | None
) -> None:
    """Options that do not apply to the chosen protocol are refused before the model is loaded."""
    from vla_core.errors import ConfigError

    if protocol not in ("openpi", "vla-eval"):
        raise ConfigError(f"--protocol must be openpi or vla-eval, got {protocol!r}.")
    if protocol == "openpi":
        if execute_steps is not None:
            raise ConfigError(
                "--execute-steps applies to --protocol vla-eval; an openpi client receives the whole chunk."
            )
        return
    # The harness's own server loop serves vla-eval: its client sends no API key, and the loop has
    # no message size limit or idle timeout to set.
    given = {
        "--api-key": api_key is not None,
        "--max-message-mb": max_message_mb != MAX_MESSAGE_MB,
        "--idle-timeout": idle_timeout != IDLE_TIMEOUT_S,
    }
    unsupported = [flag for flag, was_given in given.items() if was_given]
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)} cannot be used with --protocol vla-eval: the vla-eval harness's connection "
            "sends no API key and its server loop has no size limit or idle timeout. Keep the server on 127.0.0.1 "
            "(the harness's Docker container shares the host network) or a trusted network."
        )
    import vla_core.serving.vla_eval_server  # noqa: F401  (the extra is missing: said before the model loads)


def _serve_vla_eval(
    policy: Any, checkpoint: Path, keys: tuple[dict[str, str], ...], frame_size: Any, seed: int,
    execute_steps: int | None, host: str, port: int, console: Console,
) -> None:
    from vla_core.bind import bind_error
    from vla_core.serving.vla_eval_server import VLAEvalModelServer, serve_vla_eval

    server = VLAEvalModelServer.from_policy(
        policy, keys, execute_steps=execute_steps, seed=seed, frame_size=frame_size, checkpoint=checkpoint
    )
    spec = server.service.spec
    fed = {target: [w for w, t in spec.keys.items() if t == target and w != target] for target in spec.cameras}
    console.print(f"harness keys -> cameras: {fed}; {server.chunk_size} actions executed per chunk",
                  soft_wrap=True, markup=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] serving on {host} without an API key: anyone who can reach it can use it.")

    def ready(url: str) -> None:
        console.print(f"serving {checkpoint} to vla-eval at {url}  (GET /health; Ctrl-C stops)", soft_wrap=True)

    try:
        serve_vla_eval(server, host, port, on_ready=ready)
    except OSError as exc:  # the port was taken while the model loaded
        raise bind_error(exc, host, port) from None
    console.print("stopped")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
