"""Atomic directory writes: a checkpoint is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from vla_core.errors import CheckpointError


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
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise CheckpointError(
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
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not target.exists():
            os.rename(old, target)  # put the previous version back
        raise CheckpointError(
            f"writing '{target}' failed: {exc.strerror or exc}; nothing was changed there. "
            f"Check free space and permissions of '{target.parent}'."
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
