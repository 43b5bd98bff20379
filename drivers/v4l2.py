"""V4L2 enumeration for the admin page: capture devices with their names and supported modes (ioctls, no tools)."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import struct
from typing import Any

# _IOWR('V', nr, size) on Linux: dir(3) << 30 | size << 16 | 'V' << 8 | nr
_IOC_RW = 3


def _iowr(nr: int, size: int) -> int:
    return _IOC_RW << 30 | size << 16 | ord("V") << 8 | nr


_QUERYCAP = (2 << 30) | (104 << 16) | (ord("V") << 8) | 0  # _IOR('V', 0, struct v4l2_capability)
_ENUM_FMT = _iowr(2, 64)
_ENUM_FRAMESIZES = _iowr(74, 44)
_ENUM_FRAMEINTERVALS = _iowr(75, 52)
_BUF_TYPE_VIDEO_CAPTURE = 1
_CAP_VIDEO_CAPTURE = 0x00000001
_CAP_DEVICE_CAPS = 0x80000000
_FRMSIZE_DISCRETE = 1
_FRMIVAL_DISCRETE = 1
_MAX_ENTRIES = 64


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _ioctl(fd: int, request: int, buf: bytes) -> bytes | None:
    data = bytearray(buf)
    try:
        fcntl.ioctl(fd, request, data)
    except OSError:
        return None
    return bytes(data)


def _capabilities(fd: int) -> dict[str, Any] | None:
    raw = _ioctl(fd, _QUERYCAP, bytes(104))
    if raw is None:
        return None
    driver, card, bus, _version, caps, device_caps = struct.unpack_from("16s32s32sIII", raw)
    effective = device_caps if caps & _CAP_DEVICE_CAPS else caps
    return {"driver": _cstr(driver), "name": _cstr(card), "bus": _cstr(bus), "capture": bool(effective & 1)}


def _formats(fd: int) -> list[tuple[int, str, str]]:
    out = []
    for index in range(_MAX_ENTRIES):
        raw = _ioctl(fd, _ENUM_FMT, struct.pack("II", index, _BUF_TYPE_VIDEO_CAPTURE) + bytes(56))
        if raw is None:
            break
        _i, _t, _flags, description, pixelformat = struct.unpack_from("III32sI", raw)
        out.append((pixelformat, pixelformat.to_bytes(4, "little").decode("ascii", "replace"), _cstr(description)))
    return out


def _sizes(fd: int, pixelformat: int) -> list[tuple[int, int]]:
    out = []
    for index in range(_MAX_ENTRIES):
        raw = _ioctl(fd, _ENUM_FRAMESIZES, struct.pack("III", index, pixelformat, 0) + bytes(32))
        if raw is None:
            break
        _i, _pf, kind, width, height = struct.unpack_from("IIIII", raw)
        if kind != _FRMSIZE_DISCRETE:
            _i, _pf, kind, _minw, maxw, _sw, _minh, maxh = struct.unpack_from("IIIIIIII", raw)
            out.append((maxw, maxh))
            break
        out.append((width, height))
    return out


def _rates(fd: int, pixelformat: int, width: int, height: int) -> list[float]:
    out = []
    for index in range(_MAX_ENTRIES):
        raw = _ioctl(fd, _ENUM_FRAMEINTERVALS, struct.pack("IIIII", index, pixelformat, width, height, 0) + bytes(32))
        if raw is None:
            break
        *_head, kind, num, den = struct.unpack_from("IIIIIII", raw)
        if kind != _FRMIVAL_DISCRETE or num == 0:
            break
        out.append(round(den / num, 2))
    return out


def _modes(fd: int) -> list[dict[str, Any]]:
    modes = []
    for pixelformat, fourcc, description in _formats(fd):
        for width, height in _sizes(fd, pixelformat):
            rates = _rates(fd, pixelformat, width, height)
            modes.append({"fourcc": fourcc, "format": description, "width": width, "height": height, "fps": rates})
    return modes


def describe_device(path: str) -> dict[str, Any] | None:
    """One V4L2 device (name, driver, modes), or None if it is not a video capture device."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        caps = _capabilities(fd)
        if caps is None or not caps.pop("capture"):
            return None
        return {"path": path, **caps, "modes": _modes(fd)}
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def list_v4l2_devices(pattern: str = "/dev/video*") -> list[dict[str, Any]]:
    """Every V4L2 capture device matching `pattern`, by index."""
    out = []
    for path in sorted(glob.glob(pattern), key=lambda p: int(re.sub(r"\D", "", p) or 0)):
        info = describe_device(path)
        if info is not None:
            digits = re.sub(r"\D", "", os.path.basename(path))
            out.append({"index": int(digits) if digits else None, **info})
    return out
