"""Video sources: the `VideoSource` interface, an OpenCV backend (V4L2, RTSP/HTTP, file) and a synthetic pattern.

Every source owns its threads: a reader that does the blocking device I/O (open, read, reconnect
with backoff) and a keeper that sends a "camera offline" slate when no frame came for
`loss_timeout_s`, so consumers always see a live picture. Frames are converted ONCE, in the reader
thread, to I420 (yuv420p planar); consumers get the newest frame, never a queue.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import cv2
import numpy as np

from drivers.capture import Backoff, CaptureStats, CaptureStatus, Device, start_threads, stop_threads
from drivers.errors import DeviceEnded, DeviceSpecError, DeviceUnavailable, DriverError

__all__ = [
    "CaptureStats",
    "CapturingVideoSource",
    "OpenCVVideoSource",
    "SyntheticVideoSource",
    "VideoDevice",
    "VideoFrame",
    "VideoSource",
    "burn_clock",
    "list_cameras",
    "open_video_source",
    "parse_video_device",
    "probe_video_device",
    "read_burned_clock",
    "without_userinfo",
]

# Drivers report device problems in their health; keep OpenCV's and FFmpeg's own chatter out of the logs.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")  # a dropped camera is noticed at once
os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", "2")  # seconds a V4L2 read may wait (default 10)

LOSS_TIMEOUT_S = 2.0
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
FPS_WINDOW_S = 2.0

Y_BLACK, Y_WHITE, Y_GREY = 16, 235, 48


@dataclass(frozen=True)
class VideoFrame:
    """One picture as every consumer sees it; treat `yuv` as read-only (it is shared, never copied)."""

    yuv: np.ndarray  # I420 / yuv420p planar, shape (height*3//2, width), uint8
    width: int
    height: int
    index: int  # +1 per delivered frame (slate frames included)
    captured_at: float  # time.monotonic() at capture: the media clock shared with audio and the board ink log
    slate: bool = False  # True for "camera offline" frames


class VideoSource(Device):
    """A camera: start it, read the newest frame (or wait for a newer one), stop it."""

    @abstractmethod
    def latest(self) -> VideoFrame | None:
        """The newest frame, or None before the first one."""

    @abstractmethod
    def wait_newer(self, after_index: int, timeout: float) -> VideoFrame | None:
        """Block until a frame with index > `after_index` exists (the newest one), or None on timeout/stop."""


# -- the machine-readable clock ----------------------------------------------------------------

_CLOCK_SLOTS = 64
_CLOCK_MARKER = (1, 0, 1, 1)
_CLOCK_MS_BITS = 44


def _clock_geometry(width: int) -> tuple[int, int]:
    block = max(width // _CLOCK_SLOTS, 2)
    return block, max(block, 4)


def _bits(value: int, count: int) -> list[int]:
    return [(value >> (count - 1 - i)) & 1 for i in range(count)]


def _checksum(ms: int, counter: int) -> int:
    payload = (ms << 8 | counter).to_bytes(7, "big")
    return (sum(payload) ^ 0xA5) & 0xFF


def burn_clock(yuv: np.ndarray, width: int, at: float, counter: int) -> None:
    """Write `at` (ms) and the low 8 bits of `counter` as a row of black/white blocks at the top of the luma."""
    ms = round(at * 1000) & ((1 << _CLOCK_MS_BITS) - 1)
    counter &= 0xFF
    bits = [*_CLOCK_MARKER, *_bits(ms, _CLOCK_MS_BITS), *_bits(counter, 8), *_bits(_checksum(ms, counter), 8)]
    block, rows = _clock_geometry(width)
    line = np.repeat(np.where(np.array(bits, dtype=bool), Y_WHITE, Y_BLACK).astype(np.uint8), block)
    yuv[:rows, : line.size] = line
    yuv[:rows, line.size : width] = Y_BLACK
    _grey_chroma(yuv, width, 0, 0, width, rows)


def _grey_chroma(yuv: np.ndarray, width: int, x0: int, y0: int, x1: int, y1: int) -> None:
    """Remove colour from a rectangle of the picture (so burned-in marks read black and white)."""
    height = yuv.shape[0] * 2 // 3
    x0, y0, x1, y1 = max(x0, 0) // 2, max(y0, 0) // 2, (min(x1, width) + 1) // 2, (min(y1, height) + 1) // 2
    for offset in (height, height + height // 4):
        plane = yuv[offset : offset + height // 4].reshape(height // 2, width // 2)
        plane[y0:y1, x0:x1] = 128


def read_burned_clock(yuv: np.ndarray) -> float | None:
    """The clock (time.monotonic()) burned into a frame by `burn_clock` (after encoding and decoding too), or None."""
    if yuv.ndim != 2 or yuv.dtype != np.uint8:
        return None
    width = yuv.shape[1]
    block, rows = _clock_geometry(width)
    if yuv.shape[0] < rows or width < block * _CLOCK_SLOTS:
        return None
    strip = yuv[rows // 4 : max(rows * 3 // 4, rows // 4 + 1), : block * _CLOCK_SLOTS].astype(np.float32)
    cells = strip.reshape(strip.shape[0], _CLOCK_SLOTS, block)[:, :, block // 4 : max(block * 3 // 4, block // 4 + 1)]
    bits = [int(v > (Y_BLACK + Y_WHITE) / 2) for v in cells.mean(axis=(0, 2))]
    if tuple(bits[:4]) != _CLOCK_MARKER:
        return None
    ms = int("".join(map(str, bits[4 : 4 + _CLOCK_MS_BITS])), 2)
    counter = int("".join(map(str, bits[48:56])), 2)
    if int("".join(map(str, bits[56:64])), 2) != _checksum(ms, counter):
        return None
    return ms / 1000.0


def _burn_text(yuv: np.ndarray, height: int, text: str, row: int, scale: float) -> None:
    luma = yuv[:height]
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = 8
    cv2.rectangle(luma, (x - 4, row - h - 6), (x + w + 4, row + base + 4), Y_BLACK, -1)
    _grey_chroma(yuv, yuv.shape[1], x - 4, row - h - 6, x + w + 5, row + base + 5)
    cv2.putText(luma, text, (x, row), cv2.FONT_HERSHEY_SIMPLEX, scale, Y_WHITE, thickness, cv2.LINE_AA)


def _clock_text() -> str:
    """The wall-clock time of day a person reads on the picture (a label: the media clock is monotonic)."""
    at = time.time()
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def _slate_image(width: int, height: int, name: str) -> np.ndarray:
    """The "camera offline" picture (I420) for a source."""
    yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    yuv[:height] = Y_GREY
    scale = max(width / 640, 0.5)
    _burn_text(yuv, height, "camera offline", height // 2, scale * 1.2)
    _burn_text(yuv, height, f"{name}: reconnecting...", height // 2 + int(50 * scale), scale * 0.8)
    return yuv


# -- the shared machinery ----------------------------------------------------------------------


class CapturingVideoSource(VideoSource):
    """A reader thread (open/read/reconnect) and a keeper thread (slate on loss) around a backend.

    Backends implement `_open`, `_grab` (returns an I420 array and its capture time) and `_close`;
    they raise `DeviceUnavailable` to be retried with backoff and `DeviceEnded` to stop for good.
    """

    def __init__(
        self,
        name: str,
        width: int,
        height: int,
        fps: float,
        *,
        loss_timeout_s: float = LOSS_TIMEOUT_S,
        backoff_first_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        if width % 2 or height % 2:
            raise DeviceSpecError(f"{width}x{height}: width and height must be even for I420")
        self.name = name
        self.width, self.height, self.fps = width, height, float(fps)
        self.loss_timeout_s = loss_timeout_s
        self._backoff = Backoff(backoff_first_s, backoff_max_s)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._latest: VideoFrame | None = None
        self._index = 0
        self._started_at = time.monotonic()
        self._last_real: float | None = None  # monotonic time of the last device frame
        self._previous: float | None = None  # the same, forgotten at each (re)open: gaps count as drops only within one
        self._real_times: deque[float] = deque()
        self._dropped = 0
        self._reconnects = 0
        self._problem = ""
        self._ended = False
        self._expected_fps = self.fps
        self._slate = _slate_image(width, height, name)

    # -- lifecycle

    def start(self) -> None:
        """Start the reader and keeper threads (no-op if running); a stopped source starts afresh."""
        if self._threads:
            return
        self._stopping.clear()
        with self._cond:
            self._started_at = time.monotonic()
            self._last_real = self._previous = None
            self._ended, self._problem = False, ""
        self._threads = start_threads(f"camera:{self.name}", {"reader": self._read_loop, "keeper": self._keep_loop})

    def stop(self) -> None:
        """Stop and join both threads (idempotent)."""
        threads, self._threads = self._threads, []
        stop_threads(self._stopping, self._cond, threads)

    # -- consumers

    def latest(self) -> VideoFrame | None:
        """The newest frame (no copy), or None before the first one."""
        return self._latest

    def wait_newer(self, after_index: int, timeout: float) -> VideoFrame | None:
        """Block until a frame newer than `after_index` exists; the newest one, or None on timeout/stop."""

        def ready() -> bool:
            frame = self._latest
            return self._stopping.is_set() or (frame is not None and frame.index > after_index)

        with self._cond:
            self._cond.wait_for(ready, timeout)
            frame = self._latest
        return frame if frame is not None and frame.index > after_index else None

    @property
    def expected_fps(self) -> float:
        """The rate the device should deliver: the configured one, or a file's or IP camera's own lower rate."""
        return self._expected_fps

    def stats(self) -> CaptureStats:
        """Status, measured fps, drops and age of the last device frame."""
        now = time.monotonic()
        with self._cond:
            self._trim_rate_window(now)
            fps = len(self._real_times) / FPS_WINDOW_S
            age = None if self._last_real is None else now - self._last_real
            status, detail = self._status(now, fps, age)
            return CaptureStats(status, round(fps, 2), self._dropped, age, detail, self._index, self._reconnects)

    def _status(self, now: float, fps: float, age: float | None) -> tuple[CaptureStatus, str]:
        if self._showing_slate(now):
            why = self._problem or f"no frame for {self.loss_timeout_s:g} s"
            return "down", f"camera offline: {why}"
        if age is None:
            return "degraded", "waiting for the first frame"
        if now - self._started_at > FPS_WINDOW_S and fps < self._expected_fps / 2:
            return "degraded", f"{fps:.1f} fps, expected {self._expected_fps:g}"
        return "ok", ""

    # -- producers (called from the source's own threads)

    def _deliver(self, yuv: np.ndarray, captured_at: float, slate: bool = False) -> VideoFrame:
        with self._cond:
            self._index += 1
            frame = VideoFrame(yuv, self.width, self.height, self._index, captured_at, slate)
            if not slate:
                self._count_real(time.monotonic())
            self._latest = frame
            self._cond.notify_all()
        return frame

    def _count_real(self, now: float) -> None:
        if self._previous is not None and self._expected_fps > 0:
            gap = (now - self._previous) * self._expected_fps
            if gap > 1.5:
                self._dropped += round(gap) - 1
        self._last_real = self._previous = now
        self._problem = ""
        self._real_times.append(now)
        self._trim_rate_window(now)

    def _trim_rate_window(self, now: float) -> None:
        while self._real_times and now - self._real_times[0] > FPS_WINDOW_S:
            self._real_times.popleft()

    def _showing_slate(self, now: float) -> bool:
        last = self._last_real if self._last_real is not None else self._started_at
        return self._ended or now - last > self.loss_timeout_s

    def _report(self, problem: str) -> None:
        with self._cond:
            self._problem = problem

    # -- the threads

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._open()
            except DriverError as err:
                self._report(str(err))
                self._stopping.wait(self._backoff.next())
                continue
            with self._cond:
                self._previous = None
            try:
                self._read_frames()
            except DeviceEnded as err:
                self._finish(str(err))
                return
            except DriverError as err:
                self._report(str(err))
            finally:
                self._close()
            if not self._stopping.is_set():
                self._reconnects += 1
                self._stopping.wait(self._backoff.next())

    def _read_frames(self) -> None:
        while not self._stopping.is_set():
            yuv, captured_at = self._grab()
            self._deliver(yuv, captured_at)
            self._backoff.reset()

    def _finish(self, why: str) -> None:
        with self._cond:
            self._problem = why
            self._ended = True

    def _keep_loop(self) -> None:
        period = 1.0 / max(self.fps, 1.0)
        while not self._stopping.wait(period):
            if self._showing_slate(time.monotonic()):
                self._deliver_slate()

    def _deliver_slate(self) -> None:
        at = time.monotonic()
        yuv = self._slate.copy()
        burn_clock(yuv, self.width, at, self._index + 1)
        _burn_text(yuv, self.height, _clock_text(), self.height - 16, max(self.width / 1280, 0.4))
        self._deliver(yuv, at, slate=True)

    # -- the backend

    @abstractmethod
    def _open(self) -> None:
        """Open the device; raise DeviceUnavailable (retried) if it cannot be opened."""

    @abstractmethod
    def _grab(self) -> tuple[np.ndarray, float]:
        """Block for the next frame: (I420 array of the configured size, time.monotonic() at capture)."""

    def _close(self) -> None:
        """Release the device (idempotent)."""


# -- the synthetic pattern ---------------------------------------------------------------------

# BT.601 limited-range 75% colour bars: white, yellow, cyan, green, magenta, red, blue.
_BARS_YUV = (
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
)


def _bars(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    column = np.arange(width) * len(_BARS_YUV) // width
    table = np.array(_BARS_YUV, dtype=np.uint8)
    y = np.repeat(table[column, 0][np.newaxis, :], height, axis=0)
    ramp = np.linspace(Y_BLACK, Y_WHITE, width, dtype=np.float32).astype(np.uint8)
    y[height * 3 // 4 :] = ramp
    u = np.repeat(table[column[::2], 1][np.newaxis, :], height // 2, axis=0)
    v = np.repeat(table[column[::2], 2][np.newaxis, :], height // 2, axis=0)
    u[height * 3 // 8 :] = 128
    v[height * 3 // 8 :] = 128
    return y, u, v


class SyntheticVideoSource(CapturingVideoSource):
    """A moving colour-bar pattern, real-time paced, with the box clock and frame counter burned in."""

    def __init__(self, name: str, width: int = 1280, height: int = 720, fps: float = 30, **timing: Any) -> None:
        super().__init__(name, width, height, fps, **timing)
        self._planes = _bars(width, height)
        self._step = max(2, round(width / (4 * self.fps)) // 2 * 2)  # crosses the picture in ~4 s
        self._tick = 0
        self._next_at = 0.0
        scale = max(width / 1280, 0.3)
        text_height = cv2.getTextSize("#0", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][1]
        self._text_place = (_clock_geometry(width)[1] + text_height + 10, scale)  # below the clock strip

    def _open(self) -> None:
        self._next_at = time.monotonic()

    def _grab(self) -> tuple[np.ndarray, float]:
        self._wait_tick()
        at = time.monotonic()
        yuv = self._pattern(self._tick * self._step % self.width)
        burn_clock(yuv, self.width, at, self._index + 1)
        _burn_text(yuv, self.height, f"{self.name}  #{self._index + 1}  {_clock_text()}", *self._text_place)
        return yuv, at

    def _wait_tick(self) -> None:
        period = 1.0 / self.fps
        self._next_at += period
        now = time.monotonic()
        if now > self._next_at + period:  # fell behind (a busy machine): skip ticks, count them
            skipped = int((now - self._next_at) / period)
            self._next_at += skipped * period
            self._tick += skipped
        self._stopping.wait(max(0.0, self._next_at - now))
        self._tick += 1

    def _pattern(self, shift: int) -> np.ndarray:
        w, h = self.width, self.height
        out = np.empty((h * 3 // 2, w), dtype=np.uint8)
        y, u, v = self._planes
        _scroll(out[:h], y, shift)
        _scroll(out[h : h + h // 4].reshape(h // 2, w // 2), u, shift // 2)
        _scroll(out[h + h // 4 :].reshape(h // 2, w // 2), v, shift // 2)
        return out


def _scroll(dst: np.ndarray, src: np.ndarray, shift: int) -> None:
    width = src.shape[1]
    dst[:, : width - shift] = src[:, shift:]
    dst[:, width - shift :] = src[:, :shift]


# -- device specs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoDevice:
    """Where an OpenCV source reads from: a V4L2 index or path, a network URL, or a file."""

    kind: Literal["index", "path", "url", "file"]
    value: str

    @property
    def index(self) -> int:
        """The V4L2 index (kind "index" only)."""
        return int(self.value)

    @property
    def shown(self) -> str:
        """The device as errors and health show it: a URL's user-info (user:password@) replaced by ***."""
        return without_userinfo(self.value) if self.kind == "url" else self.value


def without_userinfo(url: str) -> str:
    """`url` with any user-info (user:password@) replaced by ***, the rest untouched."""
    scheme, sep, rest = url.partition("://")
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, authority_end)
    return url if not sep or at < 0 else f"{scheme}://***@{rest[at + 1 :]}"


def parse_video_device(spec: str) -> VideoDevice:
    """Check the FORM of a device spec (not that it exists); raise DeviceSpecError saying what is expected."""
    spec = spec.strip()
    if not spec:
        raise DeviceSpecError("an OpenCV camera needs a device: an index (0), a /dev path, a URL or a file path")
    if any(ord(c) < 32 for c in spec):
        raise DeviceSpecError("control characters are not allowed in a device")
    if spec.isdigit():
        if int(spec) > 63:
            raise DeviceSpecError("a V4L2 index is 0 to 63")
        return VideoDevice("index", str(int(spec)))
    if spec.startswith("/dev/"):
        return VideoDevice("path", spec)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", spec)
    if scheme and len(scheme.group(1)) > 1:  # one letter would be a Windows drive, never a scheme
        return VideoDevice("url", _check_url(spec, scheme.group(1).lower()))
    return VideoDevice("file", spec)


def _check_url(spec: str, scheme: str) -> str:
    if scheme not in URL_SCHEMES:
        raise DeviceSpecError(f"unsupported URL scheme {scheme!r}: use one of {', '.join(URL_SCHEMES)}")
    try:
        parts = urlsplit(spec)
        parts.port  # noqa: B018 - validates the port
    except ValueError as err:
        raise DeviceSpecError(f"not a valid URL: {err}") from err
    if not spec[len(scheme) + 1 :].startswith("//") or not parts.hostname:
        raise DeviceSpecError(f"the URL needs a host, e.g. {scheme}://192.168.1.20/stream")
    return spec


def probe_video_device(device: VideoDevice) -> str | None:
    """A problem with a device that has the right form (no such /dev node, no such file), or None."""
    if device.kind == "index":
        path = f"/dev/video{device.index}"
        return None if os.path.exists(path) else f"no camera at index {device.index} ({path} does not exist)"
    if device.kind == "path":
        return None if os.path.exists(device.value) else f"{device.value} does not exist"
    if device.kind == "file":
        return None if os.path.isfile(device.value) else f"no such video file: {device.value}"
    return None


# -- OpenCV ------------------------------------------------------------------------------------


class OpenCVVideoSource(CapturingVideoSource):
    """A V4L2 camera (index or /dev path), an RTSP/HTTP camera, or a video file (looped), through OpenCV."""

    def __init__(
        self,
        name: str,
        device: VideoDevice,
        width: int = 1280,
        height: int = 720,
        fps: float = 30,
        fourcc: str = "",
        loop: bool = True,
        *,
        open_timeout_s: float = 3.0,
        read_timeout_s: float = 2.0,
        **timing: Any,
    ) -> None:
        super().__init__(name, width, height, fps, **timing)
        self.device, self.fourcc, self.loop = device, fourcc, loop
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._cap: Any = None
        self._bgr: np.ndarray | None = None
        self._next_at = 0.0
        self.conversions = 0  # full-frame conversions done (the bench checks: one per delivered device frame)
        self.decode_buffers = 0  # BGR buffers OpenCV allocated (the first, plus one per size change)

    def _open(self) -> None:
        cap = self._capture()
        if not cap.isOpened():
            cap.release()
            raise DeviceUnavailable(f"cannot open {self._describe()}")
        self._cap = cap
        self._configure(cap)
        self._next_at = time.monotonic()

    def _capture(self) -> Any:
        open_ms, read_ms = (int(t * 1000) for t in self._timeouts)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        if self.device.kind == "index":
            return cv2.VideoCapture(self.device.index, cv2.CAP_V4L2)
        if self.device.kind == "path":
            real = os.path.realpath(self.device.value)  # /dev/v4l/by-id/... links to /dev/videoN
            numbered = re.fullmatch(r"/dev/video(\d+)", real)
            return cv2.VideoCapture(int(numbered.group(1)) if numbered else real, cv2.CAP_V4L2)
        return cv2.VideoCapture(self.device.value, cv2.CAP_FFMPEG, params)

    def _configure(self, cap: Any) -> None:
        if self.device.kind in ("index", "path"):
            if self.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._expected_fps = self.fps
        if 0 < native <= 120 and self.device.kind == "file":
            self._expected_fps = native  # a file plays at its own rate
        elif 0 < native < self.fps and self.device.kind == "url":
            self._expected_fps = native  # an IP camera set to a lower rate than configured (MJPEG streams guess 25)

    def _describe(self) -> str:
        return {"index": "camera index ", "path": "", "url": "", "file": "file "}[self.device.kind] + self.device.shown

    def _grab(self) -> tuple[np.ndarray, float]:
        ok, bgr = self._cap.read(self._bgr)
        if not ok and self.device.kind == "file":
            ok, bgr = self._rewind()
        if not ok or bgr is None:
            raise DeviceUnavailable(f"{self._describe()} stopped sending frames")
        captured_at = time.monotonic()
        if bgr is not self._bgr:
            self.decode_buffers += 1  # OpenCV decoded into a new array instead of the one handed back
        self._bgr = bgr
        if bgr.shape[:2] != (self.height, self.width):
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        self.conversions += 1
        if self.device.kind == "file":
            self._pace()
        return yuv, captured_at

    def _rewind(self) -> tuple[bool, np.ndarray | None]:
        if not self.loop:
            raise DeviceEnded(f"{self._describe()} ended")
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, bgr = self._cap.read(self._bgr)
        return ok, bgr

    def _pace(self) -> None:
        self._next_at += 1.0 / max(self._expected_fps, 1.0)
        delay = self._next_at - time.monotonic()
        if delay < -1.0:
            self._next_at = time.monotonic()
        self._stopping.wait(max(0.0, delay))

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            with contextlib.suppress(cv2.error):
                cap.release()


# -- factory and enumeration -------------------------------------------------------------------


def open_video_source(
    name: str,
    source: str,
    device: str = "",
    width: int = 1280,
    height: int = 720,
    fps: float = 30,
    fourcc: str = "",
    loop: bool = True,
    **timing: Any,
) -> CapturingVideoSource:
    """A (not yet started) source from plain config values; raise DeviceSpecError for a malformed spec."""
    if source == "synthetic":
        return SyntheticVideoSource(name, width, height, fps, **timing)
    if source == "opencv":
        return OpenCVVideoSource(name, parse_video_device(device), width, height, fps, fourcc, loop, **timing)
    raise DeviceSpecError(f"unknown video source {source!r}: use synthetic or opencv")


def list_cameras() -> list[dict[str, Any]]:
    """The V4L2 capture devices: path, index, name, driver and supported modes (format, size, rates)."""
    from drivers.v4l2 import list_v4l2_devices

    return list_v4l2_devices()


def frame_jpeg(frame: VideoFrame, quality: int = 80) -> bytes:
    """`frame` as a JPEG picture (a snapshot for the admin page's device test)."""
    bgr = cv2.cvtColor(frame.yuv, cv2.COLOR_YUV2BGR_I420)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DriverError("the frame could not be encoded as JPEG")
    return bytes(encoded)
