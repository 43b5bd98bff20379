"""A small real file system (tmpfs, mounted by the test as root) to fill up, and the filler that does it."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MB = 1024 * 1024
FILLER = "filler"


@contextlib.contextmanager
def small_disk(directory: Path, size_mb: int) -> Iterator[Path]:
    """`directory` as a tmpfs of `size_mb` MB for the duration (skips unless root: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def free_bytes(directory: Path) -> int:
    """Free bytes on the file system of `directory`."""
    return shutil.disk_usage(directory).free


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Grow a filler file until about `leave_bytes` are free (0: to the last byte); returns its path."""
    path = directory / FILLER
    block = bytes(256 * 1024)
    with path.open("ab", buffering=0) as handle:
        while (room := free_bytes(directory) - leave_bytes) > 0:
            try:
                handle.write(block[: min(room, len(block))])
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                break
    return path


def unfill(directory: Path) -> None:
    """Give the filler's room back."""
    (directory / FILLER).unlink(missing_ok=True)
