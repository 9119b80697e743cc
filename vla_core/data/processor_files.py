"""Where a processor keeps its files in a checkpoint, and the envelope of its config file.

Every processor (`VLAProcessor`, and the plugins' `OpenPIProcessor`, `GR00TProcessor`,
`OpenVLAProcessor`) saves into `<checkpoint>/processor/` (written atomically) a
`processor_config.json` of the form

    {"type": <class name>, "format_version": <int>, "config": {<constructor arguments>}, ...}

next to its own files (tokenizer, normalisation statistics, ...). `load_processor` finds
the class by `type`; the class reads the rest back with `read_processor_config`, which
names the file and the fix when it is missing, corrupt or of another format version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vla_core.errors import CheckpointError

#: A checkpoint's sub-directory holding the processor.
PROCESSOR_DIR = "processor"
#: The processor's config file in PROCESSOR_DIR.
CONFIG_FILE = "processor_config.json"


def write_processor_config(
    folder: Path, processor: object, format_version: int, config: dict[str, Any], **extra: Any
) -> None:
    """Write `folder/processor_config.json` for `processor` (its class name is the `type`);
    `extra`: further top-level entries (e.g. an embodiment spec)."""
    payload = {"type": type(processor).__name__, "format_version": format_version, "config": config, **extra}
    (folder / CONFIG_FILE).write_text(json.dumps(payload, indent=2))


def read_processor_config(directory: str | Path, format_version: int, reader: str) -> dict[str, Any]:
    """`<directory>/processor/processor_config.json` -> its payload (`config` a dict), checked:
    present, valid JSON with a `config`, and of `format_version`. `reader` names the
    package that reads it (e.g. "vla-paligemma"), for the error's fix."""
    path = Path(directory) / PROCESSOR_DIR / CONFIG_FILE
    try:
        payload = json.loads(path.read_text())
        payload["config"] = dict(payload["config"])
    except FileNotFoundError:
        raise CheckpointError(
            f"'{directory}' has no {PROCESSOR_DIR}/{CONFIG_FILE}: it holds no saved processor "
            "(processor.save_pretrained), so raw observations cannot be prepared for it."
        ) from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is corrupt ({exc}); re-save the processor.") from None
    if payload.get("format_version") != format_version:
        raise CheckpointError(
            f"{path} has format_version {payload.get('format_version')}; this {reader} reads {format_version}. "
            f"Upgrade {reader} or re-save the processor."
        )
    return payload
