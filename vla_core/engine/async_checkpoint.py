"""Asynchronous sharded saves (`train.async_save: true`): training goes on while the shards are written.

At a save every process hands its shards of the weights and of AdamW's state to
`torch.distributed.checkpoint.async_save`, which first copies them into CPU memory
(DCP's stager: the next optimizer step may then change the live tensors) and writes the
copy in a background thread. Each of the two DCP directories (`model_shards/`,
`trainer_state/optimizer_shards/`) is written over a gloo process group of its own,
created once per run (`AsyncSaveGroups`), so the writers' collectives never interleave
with the training step's or with each other's (torchtitan does the same).

Rank 0 writes config, processor and trainer state into the temporary directory at once.
When both DCP writes have finished on every process (DCP's save ends with a collective
in which rank 0 writes the metadata), a background thread on rank 0 records the
checksums and renames the directory into place: only then does the checkpoint count,
exactly as a synchronous save (`collective_checkpoint_directory`). A run killed while a
save is in flight leaves a `.step-N.tmp-*` directory that `--resume auto` never picks and
the next run deletes.

The trainer waits for the previous save before it starts the next one and before it
ends (`PendingSave.wait`, a collective that raises a failure of any process's write on
every process). Cost: while a save is in flight, each process holds one more copy of
its shards (parameters + AdamW moments) in CPU memory.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

from vla_core.checksums import checkpoint_directory
from vla_core.engine.distributed import DistributedContext
from vla_core.engine.rank_failures import PeerFailedError
from vla_core.engine.sharded_checkpoint import MODEL_SHARDS_DIR, OPTIMIZER_SHARDS_DIR
from vla_core.errors import CheckpointWriteError


class AsyncSaveGroups:
    """The two gloo process groups the background writers use (model, optimizer); None
    on one process. Create it on every process at the same point (a collective)."""

    def __init__(self, context: DistributedContext, timeout_s: float) -> None:
        self.model: dist.ProcessGroup | None = None
        self.optimizer: dist.ProcessGroup | None = None
        if context.is_distributed:
            from datetime import timedelta

            timeout = timedelta(seconds=timeout_s)
            self.model = dist.new_group(backend="gloo", timeout=timeout)
            self.optimizer = dist.new_group(backend="gloo", timeout=timeout)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PendingSave:
    """A sharded checkpoint being written in the background (see the module docstring).

    Args:
        target: the checkpoint directory it becomes (`checkpoints/step-N`).
        step: the training step it holds.
        context: where this process sits in the run.
        writes: this process's DCP write futures (model, optimizer).
        commit: rank 0 only: the future of the thread that waits for `writes`, then
            records the checksums and renames the directory into place.
    """

    def __init__(self, target: Path, step: int, context: DistributedContext, writes: list[Future],
                 commit: Future | None) -> None:
        self.target, self.step, self.context = target, step, context
        self.writes, self.commit = writes, commit

    def _own_error(self) -> BaseException | None:
        """Wait for this process's part; its failure, if any."""
        error = None
        for future in [*self.writes, *([self.commit] if self.commit is not None else [])]:
            try:
                future.result()
            except BaseException as exc:  # reported on every rank by wait()
                error = error or exc
        return error

    def wait(self) -> None:
        """Block until the checkpoint is complete on disk (a collective: every process calls
        it at the same point). A failed write on any process raises here on every process."""
        error = self._own_error()
        failures = self.context.all_gather_object(None if error is None else _describe(error))
        failed = [(rank, failure) for rank, failure in enumerate(failures) if failure is not None]
        if failed:
            rank, failure = failed[0]
            raise CheckpointWriteError(
                f"the background save of '{self.target}' failed on rank {rank} ({failure}); that checkpoint was not "
                "written and earlier ones are intact. Fix the cause (free space, permissions) and resume with "
                "--resume auto, or set train.async_save: false to save in the foreground."
            )

    def finish_quietly(self) -> None:
        """Wait for this process's part without talking to the others (the run is failing:
        a peer may be gone). The checkpoint completes if every process's write did."""
        self._own_error()


def start_async_save(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    target: Path,
    step: int,
    state_dir: str,
    context: DistributedContext,
    groups: AsyncSaveGroups,
    write_rank0_files: Callable[[Path], None],
    after_commit: Callable[[], None],
) -> PendingSave:
    """Start writing `target` in the background and return at once (a collective).

    `write_rank0_files(tmp)` runs on rank 0 now (config, processor, trainer state);
    `after_commit()` runs on rank 0 in the background once the checkpoint is in place
    (e.g. deleting checkpoints beyond `keep_last`).
    """
    stack = contextlib.ExitStack()
    tmp: Path | None = None
    error: BaseException | None = None
    if context.is_main:
        try:
            tmp = stack.enter_context(checkpoint_directory(target))
            write_rank0_files(tmp)
        except BaseException as exc:
            error = exc
            try:
                stack.__exit__(type(exc), exc, exc.__traceback__)  # the temporary directory goes
            except BaseException as reworded:  # atomic_directory names a failed write as CheckpointWriteError
                error = reworded
    shared = context.broadcast_object(("ok", str(tmp)) if error is None else ("error", _describe(error)))
    if error is not None:
        raise error
    if shared[0] == "error":
        raise PeerFailedError(f"rank 0 could not start the checkpoint '{target}', so this rank stops too: {shared[1]}")
    tmp = Path(shared[1])
    if not context.is_distributed:  # one process writes DCP shards on purpose; DCP warns from its thread
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
    writes = [
        dcp.async_save(get_model_state_dict(model), checkpoint_id=str(tmp / MODEL_SHARDS_DIR),
                       process_group=groups.model),
        dcp.async_save(get_optimizer_state_dict(model, optimizer),
                       checkpoint_id=str(tmp / state_dir / OPTIMIZER_SHARDS_DIR), process_group=groups.optimizer),
    ]
    commit = None
    if context.is_main:
        committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-checkpoint-commit")
        commit = committer.submit(_commit_when_written, writes, stack, tmp, after_commit)
        committer.shutdown(wait=False)  # the thread ends after this one task
    return PendingSave(target, step, context, writes, commit)


def _commit_when_written(
    writes: list[Future], stack: contextlib.ExitStack, tmp: Path, after_commit: Callable[[], None]
) -> None:
    """Rank 0's background thread: once every DCP write is done (on every process), record
    the checksums and rename the checkpoint into place; a failed write removes it instead."""
    try:
        for future in writes:
            future.result()
    except BaseException as exc:
        stack.__exit__(type(exc), exc, exc.__traceback__)
        raise
    commit_checkpoint(stack, tmp)
    after_commit()


def commit_checkpoint(stack: contextlib.ExitStack, tmp: Path) -> None:
    """Close the checkpoint's atomic directory `tmp`: checksums, fsync, rename into place."""
    stack.close()
