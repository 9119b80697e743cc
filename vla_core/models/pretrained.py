"""`load_pretrained(path)`: our checkpoints, and foreign ones through plugin hooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vla_core import registry
from vla_core.checksums import verify_checksums
from vla_core.errors import CheckpointError, VLAError
from vla_core.models.architecture import buildable_spec
from vla_core.models.base_vla import CONFIG_NAME
from vla_core.models.build import build_vla
from vla_core.models.weights import load_into, load_state_dict

#: Training-only part of a checkpoint (vla_core.engine.checkpoint.STATE_DIR), skipped by inference.
TRAINER_STATE_DIR = "trainer_state"


def without_pretrained_paths(spec: Any) -> Any:
    """A copy of `spec` with every `pretrained_name_or_path` cleared, whatever it named (for
    a spec already known to record every architecture; a checkpoint's spec goes through
    `vla_core.models.architecture.buildable_spec`, which also checks that)."""
    if isinstance(spec, dict):
        return {
            k: (None if k == "pretrained_name_or_path" else without_pretrained_paths(v)) for k, v in spec.items()
        }
    if isinstance(spec, list):
        return [without_pretrained_paths(v) for v in spec]
    return spec


def check_architecture(spec: dict[str, Any], state: Mapping[str, Any], where: str, path: Path) -> None:
    """Build `spec` with its parameters on the meta device (no memory) and check that the
    checkpoint's tensors fit it, before anything is allocated: a spec that does not describe
    the saved architecture (e.g. a part that fell back to a model type's full-size default)
    is an error naming the first tensors that differ, not an out-of-memory kill."""
    from vla_core.engine.meta_init import parameters_on_meta

    try:
        with parameters_on_meta():
            probe = build_vla(spec)
    except CheckpointError:
        raise
    except VLAError as exc:  # e.g. widths that do not fit: the saved config itself is wrong
        raise CheckpointError(f"{path}: config.json's {where} cannot be built: {exc}") from None
    except Exception:  # a component that cannot be built on meta: the real build checks the weights instead
        return
    shapes = {key: tuple(tensor.shape) for key, tensor in probe.state_dict().items()}
    del probe
    differ = sorted((key, shapes[key], tuple(tensor.shape)) for key, tensor in state.items()
                    if key in shapes and shapes[key] != tuple(tensor.shape))
    unexpected = sorted(key for key in state if key not in shapes)
    if not differ and not unexpected:
        return
    lines = [f"{key}: config {want}, weights {got}" for key, want, got in differ[:5]]
    lines += [f"{key}: in the weights, not in the model the config describes" for key in unexpected[:5 - len(lines)]]
    raise CheckpointError(
        f"{path}: config.json's {where} does not describe the architecture of the saved weights "
        f"({len(differ)} tensors differ in shape, {len(unexpected)} are unknown to it), e.g.\n  " + "\n  ".join(lines)
        + "\nA part was built from defaults instead of the recorded architecture: record it in config.json "
        "(its component's resolved_parameters(), see docs/writing-a-plugin.md), or re-save the checkpoint "
        "where the directory it was initialised from exists (`vla export`)."
    )


def read_checkpoint_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_NAME
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist. Check the path.")
    if not config_path.is_file():
        raise CheckpointError(
            f"'{path}' is not a checkpoint directory: it has no {CONFIG_NAME}. Point to a directory "
            "written by save_pretrained or `vla train` (e.g. runs/NAME/checkpoints/step-1000)."
        )
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path} is corrupt ({exc}); restore it or re-save the checkpoint.") from None


def load_pretrained(path: str | Path, *, use_inference_model: bool = True, strict: bool = True) -> Any:
    """Load a saved VLA, in eval mode, with `vla.processor` set when the checkpoint has one.

    Args:
        path: a directory written by `save_pretrained` / `vla train`, or a foreign checkpoint
            directory that an installed plugin recognises (e.g. transformers' PI0). The model is
            built from config.json alone (the directories its parts were initialised from are not
            needed); a config that does not describe the saved weights is an error.
        use_inference_model: build the run's `inference_model` when the checkpoint has one
            (same weights, faster inference); False builds the training model.
        strict: every checkpoint tensor must match the model.
    """
    path = Path(path)
    config = read_checkpoint_config(path)
    if config.get("format") != "vla":
        return _load_foreign(path, config)
    # Hash what is read (weights, adapter, processor), not the optimizer state: inference
    # never reads it. A damaged file is named here, before anything is built from it.
    verify_checksums(path, exclude=(TRAINER_STATE_DIR,))
    where = "inference_model" if use_inference_model and config.get("inference_model") else "model"
    spec = buildable_spec(config[where], "vlas", where, path)
    state = load_state_dict(path)
    if strict:
        check_architecture(spec, state, where, path)
    vla = build_vla(spec)
    vla.load_report = load_into(vla, state, strict=strict, source=str(path))
    del state
    if (path / "adapter").is_dir():  # trained with LoRA: the weights are the base, merge the adapter
        from vla_core.engine.lora import merge_adapter

        vla = merge_adapter(vla, path / "adapter")
    vla.checkpoint_dir = path
    vla.checkpoint_config = config
    # The processor saved with the checkpoint (raw observation -> inputs, actions -> robot
    # units); None when the checkpoint has none. Its statistics are validated on load.
    vla.processor = load_processor(path, getattr(vla, "processor_spec", None))
    return vla.eval()


def load_processor(path: str | Path, spec: Mapping[str, Any] | None = None) -> Any | None:
    """The processor saved in checkpoint directory `path`, or None when it holds none (no `processor/`).

    Its class is the one the model's `processor` spec names (group vla.processors), as
    training builds it; without a spec, the class a VLAProcessor recorded in
    `processor/processor_config.json`.
    """
    from vla_core.data.processor_files import CONFIG_FILE, PROCESSOR_DIR

    path = Path(path)
    if not (path / PROCESSOR_DIR).is_dir():
        return None
    name = (spec or {}).get("type")
    config_path = path / PROCESSOR_DIR / CONFIG_FILE
    if name is None and config_path.is_file():
        try:
            name = json.loads(config_path.read_text())["type"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{config_path} is corrupt ({exc}); re-save the processor.") from None
    if name is None:
        return None
    return registry.load("processors", name).from_pretrained(path)


def _load_foreign(path: Path, config: dict[str, Any]) -> Any:
    from vla_core.plugin_manager import get_plugin_manager

    results = get_plugin_manager().hook.vla_load_foreign_checkpoint(path=path, config=config)
    if results is not None:
        if getattr(results, "processor", None) is None:
            results.processor = load_processor(path, getattr(results, "processor_spec", None))
        return results.eval()
    model_type = config.get("model_type", "unknown")
    raise CheckpointError(
        f"'{path}' is not a vla checkpoint (its config.json has model_type '{model_type}') and no installed "
        "plugin recognises it. Install the plugin for that format (transformers PI0: pip install vla-paligemma)."
    )
