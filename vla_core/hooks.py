"""Hook specifications for plugins that extend vla beyond components.

A plugin module registered in the `vla.plugins` entry-point group implements any of
these with `@vla_core.hookimpl`::

    [project.entry-points."vla.plugins"]
    my_plugin = "my_plugin.hooks"

Keep that module light: it is imported whenever the `vla` CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

PROJECT = "vla"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vla_add_commands(app: Any) -> None:
    """Add commands to the `vla` CLI.

    :param app: the root `typer.Typer` application; call `app.command()(fn)` or
        `app.add_typer(sub_app, name="...")`.

    Called once when the CLI starts, before arguments are parsed. Import heavy modules
    inside your command functions, not at module level, to keep `vla` starting fast.
    """


@hookspec
def vla_train_callbacks(config: Any) -> list[Any] | None:
    """Return callbacks for a training run.

    :param config: the validated `RunConfig` of the run.
    :return: a list of objects with any of the methods `on_train_start(trainer)`,
        `on_step_end(trainer, step, metrics)`, `on_checkpoint(trainer, step, path)` and
        `on_train_end(trainer)`; or None.

    Called once by the trainer before the first step, on every process.
    """


@hookspec
def vla_metric_sinks(config: Any) -> list[Any] | None:
    """Return extra metric sinks (e.g. TensorBoard, Weights & Biases).

    :param config: the validated `RunConfig` of the run.
    :return: a list of objects with `log(step: int, metrics: dict[str, float])` and
        optionally `close()`; or None.

    Called once by the trainer on the main process; metrics also go to
    `<output_dir>/metrics.jsonl` regardless.
    """


@hookspec(firstresult=True)
def vla_load_foreign_checkpoint(path: Path, config: dict[str, Any]) -> Any | None:
    """Load a checkpoint directory that is not in vla's own format.

    :param path: the directory passed to `load_pretrained`.
    :param config: its parsed `config.json` (e.g. transformers' `model_type: pi0`).
    :return: a built VLA with the weights loaded, or None if this plugin does not know
        the format (the next plugin is asked).

    Called by `vla_core.load_pretrained` when `config.json` is not a vla config.
    """
