"""`collective_checkpoint_directory`: one atomic checkpoint directory written by every process.

Rank 0 owns the temporary sibling (`vla_core.checksums.checkpoint_directory`) and tells
the others its path; every process writes its shards into it; once all say they are done,
rank 0 records the checksums of every file (its own and the others', on the shared
filesystem) and renames it into place. Complete or absent, as a single-process save: a
process killed mid-save leaves only the `.step-N.tmp-*` sibling, which `--resume auto`
never picks and the next run deletes. A failure on any process (disk full on one node)
removes the temporary directory and raises on every process, naming the rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from vla_core.checksums import checkpoint_directory
from vla_core.engine.distributed import DistributedContext
from vla_core.engine.rank_failures import PeerFailedError
from vla_core.errors import CheckpointWriteError


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def collective_checkpoint_directory(target: Path, context: DistributedContext) -> Iterator[Path]:
    """Yield the temporary directory every process writes into (a collective: all must enter).

    On one process this is `checkpoint_directory(target)`.
    """
    if not context.is_distributed:
        with checkpoint_directory(target) as tmp:
            yield tmp
        return
    stack = contextlib.ExitStack()
    opened: Path | None = None
    open_error: BaseException | None = None
    if context.is_main:
        try:
            opened = stack.enter_context(checkpoint_directory(target))
        except BaseException as exc:
            open_error = exc
    shared = context.broadcast_object(("ok", str(opened)) if open_error is None else ("error", _describe(open_error)))
    if open_error is not None:
        raise open_error
    if shared[0] == "error":
        raise PeerFailedError(f"rank 0 could not create the checkpoint '{target}', so this rank stops too: {shared[1]}")
    body_error: BaseException | None = None
    try:
        yield Path(shared[1])
    except BaseException as exc:
        body_error = exc
    failures = context.all_gather_object(None if body_error is None else _describe(body_error))
    failed = [(rank, failure) for rank, failure in enumerate(failures) if failure is not None]
    finish_error: BaseException | None = None
    if context.is_main:
        if body_error is not None:
            exc_info: tuple = (type(body_error), body_error, body_error.__traceback__)
        elif failed:
            other = CheckpointWriteError(f"rank {failed[0][0]} failed writing its shards of '{target}': {failed[0][1]}")
            exc_info = (type(other), other, None)
        else:
            exc_info = (None, None, None)
        try:
            stack.__exit__(*exc_info)  # success: checksums + rename; failure: the temporary directory goes
        except BaseException as exc:
            finish_error = exc
    finished = context.broadcast_object(None if finish_error is None else _describe(finish_error))
    if body_error is not None:
        raise body_error
    if finish_error is not None:
        raise finish_error
    if failed:
        rank, failure = failed[0]
        raise CheckpointWriteError(
            f"rank {rank} failed writing its shards of the checkpoint '{target}' ({failure}); nothing was saved "
            "there and earlier checkpoints are intact. Fix the cause on that rank's node and resume with --resume auto."
        )
    if finished is not None:
        raise CheckpointWriteError(f"rank 0 could not finish the checkpoint '{target}': {finished}")
