"""Atomic file writes: write a temp file beside the target, fsync it, rename it over, fsync the dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, keep_previous: bool = False) -> None:
    """Replace `path` with `data` so that a reader or a power cut sees the old or the new file, whole.

    With `keep_previous`, the file being replaced is kept as `<name>.prev` for rollback.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if keep_previous and path.exists():
            previous = path.with_name(path.name + ".prev")
            os.link(path, previous.with_name(previous.name + ".new"))
            os.replace(previous.with_name(previous.name + ".new"), previous)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
