"""`vla train CONFIG`: train a VLA; `--nproc N` re-launches itself under torchrun."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer


def torchrun_command(
    config: Path,
    overrides: list[str],
    resume: str | None,
    nproc: int,
    nnodes: int,
    node_rank: int,
    master_addr: str | None,
    master_port: int,
    debug: bool,
) -> list[str]:
    """The `python -m torch.distributed.run ... -m vla_core.cli train ...` command line that
    runs this training on `nproc` processes per node (one node: `--standalone`)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--nnodes={nnodes}"]
    if master_addr:
        command += [f"--node_rank={node_rank}", f"--master_addr={master_addr}", f"--master_port={master_port}"]
    else:
        command += ["--standalone"]
    command += ["-m", "vla_core.cli", *(["--debug"] if debug else []), "train", str(config)]
    for override in overrides:
        command += ["--set", override]
    if resume:
        command += ["--resume", resume]
    return command


def train_cmd(
    config: Path = typer.Argument(..., help="Run config file (YAML, TOML, JSON or .py)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a value: key.path=value (repeatable)."),
    resume: str | None = typer.Option(
        None, "--resume", help="'auto' (the latest checkpoint in output_dir, if any) or a checkpoint directory."
    ),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes per node; more than 1 shards with FSDP2."),
    nnodes: int = typer.Option(1, "--nnodes", min=1, help="Nodes (multi-node: run the same command on each)."),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="This node's rank (multi-node)."),
    master_addr: str | None = typer.Option(None, "--master-addr", help="Rendezvous host: node 0's address."),
    master_port: int = typer.Option(29500, "--master-port", help="Rendezvous port on the master."),
) -> None:
    """Train the model of a run config on its dataset; metrics go to <output_dir>/metrics.jsonl and
    checkpoints to <output_dir>/checkpoints/step-<N>/."""
    from vla_core.config.loading import load_config
    from vla_core.errors import ConfigError

    run_config = load_config(config, overrides)  # fail fast, once, before spawning processes
    launched = "LOCAL_RANK" in os.environ
    if (nproc > 1 or nnodes > 1) and not launched:
        if nnodes > 1 and not master_addr:
            raise ConfigError("multi-node training needs --master-addr (node 0's address) on every node.")
        from vla_core.engine.launch import check_launch, run_torchrun

        check_launch(run_config, nproc, nnodes)  # once, here, rather than once per spawned process
        debug = os.environ.get("VLA_DEBUG") == "1"
        command = torchrun_command(config, overrides, resume, nproc, nnodes, node_rank, master_addr, master_port, debug)
        typer.echo(f"launching {nproc * nnodes} processes: {' '.join(command)}", err=True)
        raise typer.Exit(run_torchrun(command[3:]))  # command[:3] is `python -m torch.distributed.run`

    from rich.console import Console

    from vla_core.engine.trainer import Trainer

    console = Console(stderr=True)
    result = Trainer(run_config, resume=resume, console=console).fit()
    if int(os.environ.get("RANK", "0")) == 0:
        loss = result.last_metrics.get("loss")
        summary = f"done: step {result.step}" + (f", loss {loss:.4f}" if loss is not None else "")
        console.print(f"{summary}; checkpoint {result.last_checkpoint}; metrics {result.output_dir / 'metrics.jsonl'}",
                      soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
