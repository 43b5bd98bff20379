"""Atomic file writes: write a temp file beside the target, fsync it, rename it over, fsync the dir.

A crash (SIGKILL, power cut) at any step leaves the target, and its `.prev` when one is kept,
each a whole version; what a crash leaves behind is only uniquely named temp files, which the next
`keep_previous` write of the same target removes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_EXCHANGE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV}


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def previous_path(path: Path) -> Path:
    """Where `write_atomic(..., keep_previous=True)` keeps the version it replaced."""
    return path.with_name(path.name + ".prev")


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, keep_previous: bool = False) -> None:
    """Replace `path` with `data` so that a reader or a power cut sees the old or the new file, whole.

    With `keep_previous`, the file being replaced is kept as `<name>.prev` for rollback.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        if keep_previous:  # only then: a sweep lists the directory, and some hold thousands of files
            _sweep(path)
        tmp = _write_temp(path, data, mode)
        try:
            if keep_previous and path.exists():
                _link_previous(path)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


def exchange_atomic(first: Path, second: Path) -> None:
    """Swap two existing files in one step (each name holds the other's content, whole, at every instant).

    Where the filesystem cannot exchange (e.g. vfat), falls back to two atomic writes: a crash
    between them leaves both names holding `second`'s content.
    """
    first, second = Path(first), Path(second)
    with _locked(first.parent):
        try:
            _rename_exchange(first, second)
        except OSError as err:
            if err.errno not in _EXCHANGE_UNSUPPORTED:
                raise
        else:
            fsync_dir(first.parent)
            return
    old_first, old_second = first.read_bytes(), second.read_bytes()
    mode = first.stat().st_mode & 0o7777
    write_atomic(first, old_second, mode=mode)
    write_atomic(second, old_first, mode=mode)


def _rename_exchange(first: Path, second: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(first))


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise writers in `directory` (across processes) so a sweep never takes another's temp file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _temp_path(path: Path, role: str) -> Path:
    return path.with_name(f".{path.name}.{role}-{secrets.token_hex(6)}.tmp")


def _sweep(path: Path) -> None:
    """Remove temp files a crash left while writing `path` (and the fixed-name link older versions used)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(new|prev)-[0-9a-f]{{12}}\.tmp$")
    legacy = path.name + ".prev.new"
    for entry in os.scandir(path.parent):
        if pattern.match(entry.name) or entry.name == legacy:
            Path(entry.path).unlink(missing_ok=True)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    tmp = _temp_path(path, "new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _link_previous(path: Path) -> None:
    """Make the current file `<name>.prev` in one rename: a hard link under a unique name, moved over."""
    previous = previous_path(path)
    if previous.exists() and previous.samefile(path):
        return  # a crash came between the two renames: kept already (and rename(2) between links is a no-op)
    link = _temp_path(path, "prev")
    os.link(path, link)
    try:
        os.replace(link, previous)
    except BaseException:
        link.unlink(missing_ok=True)
        raise
