"""`vla export`: a training checkpoint -> a plain inference checkpoint (LoRA merged)."""

from __future__ import annotations

from pathlib import Path

from vla_core.checksums import checkpoint_directory
from vla_core.engine.lora import ADAPTER_DIR
from vla_core.errors import CheckpointError


def export_checkpoint(checkpoint: str | Path, output: str | Path, merge_lora: bool = False) -> Path:
    """Write `output`: config.json, model.safetensors (with a LoRA adapter merged into the
    weights) and the processor (saved by itself); no optimizer or trainer state; checksums.json. Atomic.

    Args:
        checkpoint: a directory written by `vla train`.
        output: the new checkpoint directory (replaced if it exists).
        merge_lora: require an adapter and merge it (`--merge-lora`); False exports a
            checkpoint trained without LoRA.
    """
    from vla_core.models.pretrained import load_pretrained, read_checkpoint_config

    checkpoint, output = Path(checkpoint), Path(output)
    config = read_checkpoint_config(checkpoint)
    has_adapter = (checkpoint / ADAPTER_DIR).is_dir()
    if merge_lora and not has_adapter:
        raise CheckpointError(
            f"'{checkpoint}' has no LoRA adapter ({ADAPTER_DIR}/), so there is nothing to merge; export it without "
            "--merge-lora, or point to a checkpoint of a run with train.lora set."
        )
    if has_adapter and not merge_lora:
        raise CheckpointError(
            f"'{checkpoint}' was trained with LoRA; its weights (model.safetensors or model_shards/) are only the "
            "base weights. Export it with --merge-lora."
        )
    if output.resolve() == checkpoint.resolve():
        raise CheckpointError("the export must go to a new directory, not onto the checkpoint itself.")
    vla = load_pretrained(checkpoint, use_inference_model=False)  # merges the adapter
    extra = {k: v for k, v in config.items() if k not in ("format", "format_version", "model")}
    extra["exported_from"] = str(checkpoint)
    extra["lora_merged"] = has_adapter
    with checkpoint_directory(output) as tmp:
        vla.write_pretrained(tmp, extra_config=extra)
        if vla.processor is not None:  # the processor writes whatever files it needs
            vla.processor.save_pretrained(tmp)
    return output
