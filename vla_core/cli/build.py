"""`vla build CONFIG`: build a VLA from a config, print its parts, optionally predict once."""

from __future__ import annotations

from pathlib import Path

import typer


def build_cmd(
    path: Path = typer.Argument(..., help="Run config file."),
    overrides: list[str] = typer.Option([], "--set", help="Override a value: key.path=value (repeatable)."),
    predict: bool = typer.Option(False, "--predict", help="Predict one action chunk from a random observation."),
    seed: int = typer.Option(0, help="Seed for weights and the random observation."),
    depth: int | None = typer.Option(
        None, "--depth", min=1,
        help="Print the module tree to this depth instead: dotted names as LoRA target_modules matches them, "
        "classes, parameter counts.",
    ),
    device: str = typer.Option("cpu", "--device", help="Build on this device; 'meta' allocates no memory (shapes "
                               "and parameter counts only)."),
) -> None:
    """Build the model of a run config and print its component tree with parameter counts
    (the config is validated first, widths included: nothing is built from a config that cannot run)."""
    import torch
    from rich.console import Console

    from vla_core.config.loading import load_config
    from vla_core.errors import ConfigError
    from vla_core.models.build import build_vla
    from vla_core.models.summary import component_tree, module_tree, random_observation

    console = Console()
    config = load_config(path, overrides)
    torch.manual_seed(seed)
    if device == "meta" and predict:
        raise ConfigError("--predict needs real weights; drop it with --device meta.", "--device")
    with console.status("building the model"), torch.device(device):
        vla = build_vla(config.model)
    console.print(component_tree(vla) if depth is None else module_tree(vla, depth))
    if device == "meta":
        console.print(f"parameters: {sum(p.numel() for p in vla.parameters())}")
    if predict:
        observation = random_observation(vla, seed=seed)
        actions = vla.eval().predict_action(**observation)
        console.print(f"predicted action chunk {tuple(actions.shape)} (normalised units):")
        torch.set_printoptions(precision=3, sci_mode=False)
        console.print(str(actions[0]))


def register(app: typer.Typer) -> None:
    app.command("build")(build_cmd)
