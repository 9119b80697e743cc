"""Training checkpoints: `<output_dir>/checkpoints/step-<N>/`, complete or absent.

    step-N/
      config.json, model.safetensors   the VLA (loadable by vla_core.load_pretrained)
      model_shards/                    instead of model.safetensors in a multi-process run: each
                                       rank's shards (DCP), assembled by load_pretrained / vla export
      adapter/                         peft LoRA adapter (LoRA runs; model.safetensors or, on several
                                       processes, model_shards/ holds the frozen base)
      processor/, dataset_statistics.json
      trainer_state/
        state.json                     step, epoch, samples seen, world size, seed
        optimizer.pt                   full (unsharded) AdamW state keyed by parameter name (one process)
        optimizer_shards/              or: each rank's AdamW shards (DCP; several processes, not LoRA)
        scheduler.pt                   LambdaLR state
        rng-rank<R>.pt                 torch / CUDA / numpy / python RNG of each rank
      checksums.json                   sha256 of every file above (vla_core.checksums)

Each directory is written into a temporary sibling and renamed (`atomic_directory`), so
a crash or a full disk leaves the previous checkpoints untouched; `--resume auto` skips a
checkpoint whose files no longer match their checksums. `.pt` files hold only
tensors and plain Python values and are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_core.atomic import writing
from vla_core.checksums import verify_checksums
from vla_core.errors import CheckpointError
from vla_core.models.pretrained import TRAINER_STATE_DIR

CHECKPOINTS_DIR = "checkpoints"
STATE_DIR = TRAINER_STATE_DIR
STATE_NAME = "state.json"
OPTIMIZER_NAME = "optimizer.pt"
SCHEDULER_NAME = "scheduler.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainerState:
    """Where a run is: restored on resume."""

    step: int  # optimizer steps completed
    epoch: int  # epoch of the next sample to read
    samples_seen: int
    world_size: int
    batch_size: int
    seed: int


def rng_file(rank: int) -> str:
    return f"rng-rank{rank:05d}.pt"


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states, as tensors and plain values (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_pt(path: Path, mmap: bool = False) -> Any:
    """Read a `.pt` file of tensors and plain values (never arbitrary pickles). `mmap`: the
    tensors map the file (read when first touched) instead of being copied into memory."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise CheckpointError(f"'{path}' is missing; the checkpoint is incomplete. Resume from another one.") from None
    except Exception as exc:
        raise CheckpointError(f"could not read '{path}' ({type(exc).__name__}: {exc}); it is corrupt.") from None


def save_pt(obj: Any, path: Path) -> None:
    """Write a `.pt` file (inside a checkpoint's atomic_directory, which fsyncs it); a
    failed write is an OSError naming `path`."""
    with writing(path):
        torch.save(obj, path)


def write_trainer_state(
    directory: Path,
    state: TrainerState,
    optimizer_state: dict[str, Any] | None,
    scheduler_state: dict[str, Any],
    rng_states: list[dict[str, Any]],
) -> None:
    """Write `trainer_state/` into a checkpoint being assembled; `optimizer_state` None when
    the ranks wrote theirs as shards (`trainer_state/optimizer_shards/`)."""
    target = directory / STATE_DIR
    target.mkdir(exist_ok=True)
    if optimizer_state is not None:
        save_pt(optimizer_state, target / OPTIMIZER_NAME)
    save_pt(scheduler_state, target / SCHEDULER_NAME)
    for rank, rng in enumerate(rng_states):
        save_pt(rng, target / rng_file(rank))
    (target / STATE_NAME).write_text(json.dumps(asdict(state), indent=2))


def read_trainer_state(checkpoint: Path) -> TrainerState:
    path = checkpoint / STATE_DIR / STATE_NAME
    if not path.is_file():
        raise CheckpointError(
            f"'{checkpoint}' has no {STATE_DIR}/{STATE_NAME}, so training cannot resume from it (it is an exported "
            "or inference-only checkpoint). Train from it with model.pretrained_name_or_path instead."
        )
    try:
        return TrainerState(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"'{path}' is corrupt ({exc}); resume from another checkpoint.") from None


class CheckpointDirectory:
    """The `checkpoints/` folder of a run: naming, discovery, retention.

    Args:
        output_dir: the run's output directory.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.root = Path(output_dir) / CHECKPOINTS_DIR
        #: (checkpoint, why) of damaged checkpoints `resolve_resume("auto")` passed over.
        self.skipped: list[tuple[Path, str]] = []

    def path(self, step: int) -> Path:
        return self.root / f"step-{step}"

    def complete(self) -> list[tuple[int, Path]]:
        """(step, path) of every complete checkpoint, oldest first. Temporary siblings of an
        interrupted save are not named step-N, so they never count."""
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and child.is_dir() and (child / STATE_DIR / STATE_NAME).is_file():
                found.append((int(match.group(1)), child))
        return sorted(found)

    def latest(self) -> Path | None:
        complete = self.complete()
        return complete[-1][1] if complete else None

    def resolve_resume(self, resume: str | None) -> Path | None:
        """`None` -> start fresh; `auto` -> the latest complete checkpoint whose files match
        their checksums (damaged newer ones are recorded in `skipped`); a path -> it, verified.

        When every checkpoint is damaged, `auto` raises rather than silently starting over."""
        if resume is None:
            return None
        if resume == "auto":
            self.skipped = []
            for _, path in reversed(self.complete()):
                try:
                    verify_checksums(path)
                    read_trainer_state(path)
                except CheckpointError as exc:
                    self.skipped.append((path, str(exc)))
                    continue
                return path
            if self.skipped:
                raise CheckpointError(
                    f"every checkpoint in '{self.root}' is damaged, so --resume auto has nothing to continue from "
                    f"(newest: {self.skipped[0][1]}). Restore one from a backup, or start a new run in another "
                    "output_dir."
                )
            return None
        path = Path(resume)
        if not path.is_dir():
            raise CheckpointError(
                f"--resume '{resume}' is not a directory. Pass a checkpoint such as "
                f"{self.root}/step-1000, or 'auto' for the latest one."
            )
        read_trainer_state(path)  # names what is missing
        verify_checksums(path)
        return path

    def remove_temporaries(self) -> list[Path]:
        """Clean up after saves interrupted by a crash: delete `.step-N.tmp-*` and `.step-N.old-*`,
        except an `.old` copy whose `step-N` is missing: a re-save of step-N was killed between
        moving the previous version aside and renaming the new one in, so that copy is put back."""
        removed = []
        if not self.root.is_dir():
            return removed
        for child in sorted(self.root.iterdir()):
            target = self.root / child.name[1:].split(".old-")[0]
            if child.name.startswith(".step-") and ".old-" in child.name and not target.exists():
                child.rename(target)
        for child in self.root.iterdir():
            if child.name.startswith(".step-") and (".tmp-" in child.name or ".old-" in child.name):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        return removed

    def prune(self, keep_last: int) -> list[Path]:
        """Delete all but the newest `keep_last` complete checkpoints."""
        complete = self.complete()
        doomed = [path for _, path in complete[: max(0, len(complete) - keep_last)]]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        return doomed


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory as given, or the latest complete checkpoint of a run directory
    (a `vla train` output_dir: `<path>/checkpoints/step-<N>/`)."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / CHECKPOINTS_DIR).is_dir():
        latest = CheckpointDirectory(path).latest()
        if latest is None:
            raise CheckpointError(
                f"the run '{path}' has no complete checkpoint yet under {path / CHECKPOINTS_DIR}; wait for the first "
                "save (train.save_every) or pass a checkpoint directory."
            )
        return latest
    return path
