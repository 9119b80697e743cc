"""`vla train --nproc N`: check what can be checked, then run torchrun, and report a failure once.

Before any process is spawned: the global batch splits into micro-batches x processes,
and there are enough GPUs for the processes of this node (on a machine without CUDA the
processes train on CPU over gloo). torchrun runs in this process
(`torch.distributed.run.run`), so its `ChildFailedError` is caught here instead of being
printed as a traceback: the ranks print a user error once (rank 0, see
`vla_core.cli.main`), and this launcher only speaks when no rank could (a process killed
by a signal, a crash before the CLI started).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from vla_core.config.run import RunConfig
from vla_core.engine.rank_failures import first_own_failure
from vla_core.engine.sampler import check_batch_split
from vla_core.errors import ResourceError, VLAError

#: Exit codes with which a rank's `vla` CLI reports an error it has already printed.
_REPORTED = (1, 2)


class RankFailedError(VLAError):
    """A training process other than rank 0 failed; the message is its own error, with its rank."""

    exit_code = 1

    def __init__(self, message: str, rank: int) -> None:
        super().__init__(message)
        self.rank = rank


def check_launch(config: RunConfig, nproc: int, nnodes: int) -> None:
    """Raise the error each of the `nproc * nnodes` processes would meet at start, now, once."""
    import torch

    check_batch_split(config.train.batch_size, config.train.grad_accum_steps, nproc * nnodes)
    if torch.cuda.is_available() and torch.cuda.device_count() < nproc:
        raise ResourceError(
            f"--nproc {nproc} starts {nproc} processes on this node, one per GPU, but it has "
            f"{torch.cuda.device_count()} GPU(s). Use --nproc {torch.cuda.device_count()} or fewer, or hide the GPUs "
            "(CUDA_VISIBLE_DEVICES=) to train on CPU."
        )


def run_torchrun(torchrun_args: list[str]) -> int:
    """Run `python -m torch.distributed.run <torchrun_args>` in this process -> exit code.

    A failed rank that printed its own `Error:` (exit code 1 or 2) passes its code on
    silently; any other failure (a signal, e.g. the out-of-memory killer) raises a
    ResourceError that names the rank.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        with _quiet_elastic_logs():
            run(parse_args(torchrun_args))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        own = first_own_failure(exc.failures)
        if own is not None and own[0] != 0:  # rank 0 prints its own errors; another rank's is said here
            raise RankFailedError(
                f"{own[1]} (that process failed first; the others were stopped)", own[0]
            ) from None
        reported = [f.exitcode for r, f in exc.failures.items() if r == 0 and f.exitcode in _REPORTED]
        if reported:
            return reported[0]
        how = f"was killed by signal {-failure.exitcode}" if failure.exitcode < 0 else (
            f"exited with code {failure.exitcode}")
        raise ResourceError(
            f"training process rank {rank} {how} before rank 0 could report anything (out of memory, or killed from "
            "outside?). Run again with --debug to see every rank's output."
        ) from None
    return 0


@contextlib.contextmanager
def _quiet_elastic_logs() -> Iterator[None]:
    """torchrun logs each failed child at ERROR level; the failure is reported once, by us."""
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    elastic.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        elastic.setLevel(level)
