"""Atomic directory writes: a checkpoint is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from vla_core.errors import CheckpointWriteError, VLAError

#: How torch.save (RuntimeError from its zip writer) and safetensors (SafetensorError) word
#: a failed write; they do not raise OSError, so these words tell an I/O failure from a bug.
_IO_WORDS = {
    errno.ENOSPC: ("no space left", "os error 28", "disk quota"),
    errno.EACCES: ("permission denied", "os error 13"),
    errno.EIO: ("file write failed", "inline_container", "os error", "input/output error"),
}


def io_failure(exc: BaseException, path: str | Path) -> OSError | None:
    """`exc` as an OSError naming `path` when it is a failed write (disk full, permission,
    I/O), whichever library raised it; None when it is something else (a bug)."""
    if isinstance(exc, OSError):
        if exc.filename is None:
            exc.filename = str(path)
        return exc
    text = str(exc).lower()
    for code, words in _IO_WORDS.items():
        if any(word in text for word in words):
            # torch's zip writer reports a full disk only as "unexpected pos": ask the disk.
            if code == errno.EIO and _disk_full(Path(path)):
                code = errno.ENOSPC
            return OSError(code, os.strerror(code), str(path))
    return None


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent if not path.is_dir() else path).free < 2**20
    except OSError:
        return False


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Around one file write: a failed write leaves as an OSError that names `path`."""
    try:
        yield
    except Exception as exc:
        failure = io_failure(exc, path)
        if failure is None:
            raise
        if failure is exc:
            raise
        raise failure from exc


def fsync_file(path: str | Path) -> None:
    """Flush a file's contents to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Flush a directory entry (the rename) to disk; a no-op where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file under `root`, then the directories (deepest first) that name them."""
    for directory, _, files in sorted(os.walk(root), key=lambda entry: -entry[0].count(os.sep)):
        for name in files:
            fsync_file(Path(directory) / name)
        fsync_directory(Path(directory))


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `target` by rename.

    If the body raises (disk full, permission denied, a crash), the temporary directory
    is removed and `target`, if it existed, is untouched. Every file written inside is
    fsynced before the rename, so after a power loss `target` never holds empty files.
    A failed write, whichever library reported it (OSError, torch's RuntimeError,
    SafetensorError), becomes a `CheckpointWriteError` naming the file (exit code 1).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise CheckpointWriteError(
            f"cannot write '{target}': {exc.strerror or exc}. Check free space and permissions of "
            f"'{target.parent}'."
        ) from None
    old: Path | None = None
    try:
        yield tmp
        fsync_tree(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        os.rename(tmp, target)
        fsync_directory(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except Exception as exc:
        failure = None if isinstance(exc, VLAError) else io_failure(exc, getattr(exc, "filename", None) or tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not target.exists():
            os.rename(old, target)  # put the previous version back
        if failure is None:
            raise
        # Name the file as it would have been called, not by its temporary sibling's path.
        where = str(failure.filename).replace(str(tmp), str(target))
        at = f" at '{where}'" if where != str(target) else ""
        raise CheckpointWriteError(
            f"writing '{target}' failed{at}: {failure.strerror or failure}; nothing was changed there and earlier "
            f"files are intact. Free some space on (or fix the permissions of) '{target.parent}' and run again."
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
