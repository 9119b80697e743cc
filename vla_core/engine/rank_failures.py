"""When one process of a multi-process run fails: name it, stop the others, report it once.

Each process that fails records its error in the file torchrun gives it
(`TORCHELASTIC_ERROR_FILE`), with its rank and whether the failure is its own or only a
consequence of another's (a collective that broke because a peer died). torchrun stops
the remaining processes as soon as one exits; a process that is not stopped (another
node's) leaves its collective after `train.collective_timeout_s` instead of waiting
forever. The launcher (`vla_core.engine.launch`) then prints the first process's own
error, with its rank.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from vla_core.errors import ResourceError, VLAError

#: The key under which our record sits in torchrun's error file, next to its own keys.
RECORD_KEY = "vla"


class CollectiveError(ResourceError):
    """A collective (all-gather, all-reduce, barrier) failed: a peer process died or did not
    answer within `train.collective_timeout_s`."""


class PeerFailedError(VLAError):
    """This process stops because another one failed (the other's error is the one to read)."""


def is_consequence(exc: BaseException) -> bool:
    """Whether `exc` only relays another process's failure."""
    return isinstance(exc, (CollectiveError, PeerFailedError))


def record_rank_failure(message: str, consequence: bool = False) -> None:
    """Write this process's error into torchrun's error file (a no-op outside torchrun).

    Args:
        message: the one-paragraph error, as the CLI would print it.
        consequence: True when this process failed only because another one did.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    rank = int(os.environ.get("RANK", "0"))
    record = {"message": f"rank {rank}: {message}", "timestamp": int(time.time()),
              RECORD_KEY: {"rank": rank, "consequence": consequence, "time": time.time()}}
    try:
        with open(path, "w") as handle:
            json.dump(record, handle)
    except OSError:  # reporting is best effort: the process is failing anyway
        pass


def record_exception(exc: BaseException) -> None:
    """`record_rank_failure` for an exception, worded as the CLI prints it."""
    from vla_core.cli import error_message

    record_rank_failure(error_message(exc)[0], consequence=is_consequence(exc))


def first_own_failure(failures: dict[int, Any]) -> tuple[int, str] | None:
    """(rank, message) of the earliest failure that a process recorded as its own, from
    torchrun's `ChildFailedError.failures`; None when no process recorded one."""
    own = []
    for rank, failure in failures.items():
        record = (getattr(failure, "error_file_data", None) or {}).get(RECORD_KEY)
        if isinstance(record, dict) and not record.get("consequence"):
            own.append((float(record.get("time", 0.0)), rank, str(failure.message)))
    if not own:
        return None
    _, rank, message = min(own)
    return rank, message


def collective_failure(exc: BaseException, rank: int, world_size: int, timeout_s: float) -> CollectiveError | None:
    """`exc` as a CollectiveError when it is a broken or timed-out collective (gloo/NCCL
    report those as RuntimeError subclasses), else None."""
    import torch.distributed as dist

    text = str(exc)
    broken = isinstance(exc, dist.DistError) or any(
        word in text for word in ("Connection closed by peer", "Connection reset", "Timed out", "timed out",
                                  "Broken pipe", "NCCL", "Gloo", "gloo")
    )
    if not isinstance(exc, RuntimeError) or not broken:
        return None
    return CollectiveError(
        f"rank {rank} of {world_size} stopped: a collective failed because another process died or did not answer "
        f"within train.collective_timeout_s ({timeout_s:g} s) ({type(exc).__name__}: {text.splitlines()[0][:300]}). "
        "The failing process's own error is reported by the launcher (or above in its log); fix that and resume "
        "with --resume auto."
    )
