"""Audio: the `AudioSource`/`AudioSink` interfaces, PyAudio (PortAudio) backends and a synthetic tone.

A source owns a reader thread (open by name substring, read 20 ms frames, reconnect with backoff)
and a keeper thread that fills silence, in real time, while the device is missing or stalls, so a
consumer always gets 50 frames a second. Frames go into a ring of the last ~1 s; readers follow
it by index and a reader that fell behind resumes at the oldest frame kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import threading
import time
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.capture import Backoff, CaptureStats, CaptureStatus, Device, start_threads, stop_threads
from drivers.errors import DeviceSpecError, DeviceUnavailable, DriverError

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioFrame",
    "AudioSink",
    "AudioSource",
    "CaptureStats",
    "CapturingAudioSource",
    "PyAudioSink",
    "PyAudioSource",
    "SyntheticAudioSink",
    "SyntheticAudioSource",
    "dbfs",
    "list_microphones",
    "list_speakers",
    "open_audio_sink",
    "open_audio_source",
    "probe_audio_device",
]

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
RING_FRAMES = 50  # ~1 s
LEVEL_FRAMES = 5  # 100 ms
FLOOR_DBFS = -100.0
FULL_SCALE = 32768.0
PACE_SLACK_S = 0.04


@dataclass(frozen=True)
class AudioFrame:
    """20 ms of sound as every consumer sees it; treat `pcm` as read-only (it is shared)."""

    pcm: np.ndarray  # int16, shape (960, channels)
    sample_rate: int  # 48000
    channels: int
    index: int  # +1 per frame (silence included)
    captured_at: float  # time.monotonic() of the first sample: the media clock shared with video
    silent: bool = False  # generated silence while the device is gone


class AudioSource(Device):
    """A microphone: start it, follow its frames by index, read its level, stop it."""

    @abstractmethod
    def read_after(self, after_index: int, timeout: float) -> AudioFrame | None:
        """The frame after `after_index` (the oldest kept if that one is gone), blocking up to `timeout`."""

    @abstractmethod
    def level(self) -> tuple[float, float]:
        """(rms_dbfs, peak_dbfs) over the last 100 ms."""


def dbfs(pcm: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) of int16 samples in dBFS (full scale = 32768), floored at -100."""
    if pcm.size == 0:
        return FLOOR_DBFS, FLOOR_DBFS
    samples = pcm.astype(np.float64)
    rms = math.sqrt(float(np.mean(samples * samples))) / FULL_SCALE
    peak = float(np.max(np.abs(samples))) / FULL_SCALE
    return tuple(max(FLOOR_DBFS, 20 * math.log10(x)) if x > 0 else FLOOR_DBFS for x in (rms, peak))  # type: ignore[return-value]


# -- the shared machinery ----------------------------------------------------------------------


class CapturingAudioSource(AudioSource):
    """A reader thread (open/read/reconnect) and a keeper thread (silence on loss) around a backend.

    Backends implement `_open`, `_read` (blocks for one 20 ms frame, int16 (960, channels)) and
    `_close`; they raise `DeviceUnavailable` to be retried with backoff.
    """

    def __init__(
        self,
        name: str,
        channels: int = 1,
        *,
        silence_after_s: float = 0.25,
        loss_timeout_s: float = 1.0,
        backoff_first_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        if channels not in (1, 2):
            raise DeviceSpecError(f"channels must be 1 or 2, not {channels}")
        self.name = name
        self.channels = channels
        self.silence_after_s = silence_after_s
        self.loss_timeout_s = loss_timeout_s
        self._backoff = Backoff(backoff_first_s, backoff_max_s)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ring: deque[AudioFrame] = deque(maxlen=RING_FRAMES)
        self._index = 0
        self._started_at = time.monotonic()
        self._last_real: float | None = None
        self._last_any = 0.0  # the media clock: monotonic time of the end of the last frame delivered
        self._device_open = False
        self._real_times: deque[float] = deque()
        self._dropped = 0
        self._reconnects = 0
        self._problem = ""
        self._silence = np.zeros((FRAME_SAMPLES, channels), dtype=np.int16)
        self._silence.flags.writeable = False

    # -- lifecycle

    def start(self) -> None:
        """Start the reader and keeper threads (no-op if running)."""
        if self._threads:
            return
        self._stopping.clear()
        self._started_at = self._last_any = time.monotonic()
        self._threads = start_threads(f"mic:{self.name}", {"reader": self._read_loop, "keeper": self._keep_loop})

    def stop(self) -> None:
        """Stop and join both threads (idempotent)."""
        threads, self._threads = self._threads, []
        stop_threads(self._stopping, self._cond, threads)

    # -- consumers

    def read_after(self, after_index: int, timeout: float) -> AudioFrame | None:
        """The frame after `after_index`, or the oldest kept one if the reader fell behind; None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping.is_set() or self._index > after_index, timeout)
            if not self._ring or self._index <= after_index:
                return None
            oldest = self._ring[0].index
            return self._ring[max(after_index + 1 - oldest, 0)]

    def latest(self) -> AudioFrame | None:
        """The newest frame, or None before the first one."""
        with self._cond:
            return self._ring[-1] if self._ring else None

    def level(self) -> tuple[float, float]:
        """(rms_dbfs, peak_dbfs) over the last 100 ms (silence reads -100)."""
        with self._cond:
            recent = list(self._ring)[-LEVEL_FRAMES:]
        if not recent:
            return FLOOR_DBFS, FLOOR_DBFS
        return dbfs(np.concatenate([frame.pcm for frame in recent]))

    def stats(self) -> CaptureStats:
        """Status, measured frame rate (50 when healthy), drops and age of the last device frame."""
        now = time.monotonic()
        with self._cond:
            while self._real_times and now - self._real_times[0] > 2.0:
                self._real_times.popleft()
            fps = len(self._real_times) / 2.0
            age = None if self._last_real is None else now - self._last_real
            status, detail = self._status(now, age)
            return CaptureStats(status, round(fps, 2), self._dropped, age, detail, self._index, self._reconnects)

    def _status(self, now: float, age: float | None) -> tuple[CaptureStatus, str]:
        last = self._last_real if self._last_real is not None else self._started_at
        if now - last > self.loss_timeout_s:
            return "down", f"microphone offline: {self._problem or 'no sound from the device'}"
        if age is None:
            return "degraded", "waiting for the device"
        return "ok", ""

    # -- producers

    def _deliver(self, pcm: np.ndarray, captured_at: float, silent: bool = False) -> None:
        with self._cond:
            self._index += 1
            self._ring.append(AudioFrame(pcm, SAMPLE_RATE, self.channels, self._index, captured_at, silent))
            now = time.monotonic()
            # Silence advances the media clock by one frame; a device frame sets it to now.
            self._last_any = self._last_any + FRAME_S if silent else now
            if not silent:
                self._last_real = now
                self._problem = ""
                self._real_times.append(now)
            self._cond.notify_all()

    def _report(self, problem: str) -> None:
        with self._cond:
            self._problem = problem

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._open()
                self._device_open = True
                self._read_frames()
            except DriverError as err:
                self._report(str(err))
            finally:
                self._close()
            if self._device_open and not self._stopping.is_set():
                self._reconnects += 1
            self._device_open = False
            self._stopping.wait(self._backoff.next())

    def _read_frames(self) -> None:
        opened, count = time.monotonic(), 0
        while not self._stopping.is_set():
            pcm = self._read()
            self._deliver(pcm, time.monotonic() - FRAME_S)
            self._backoff.reset()
            count += 1
            ahead = opened + count * FRAME_S - time.monotonic()
            if ahead > PACE_SLACK_S:  # a device faster than real time (a file, a broken clock) is held back
                self._stopping.wait(ahead)

    def _keep_loop(self) -> None:
        """Fill real-time silence while the device is closed, or open but silent for `silence_after_s`."""
        while not self._stopping.wait(FRAME_S / 4):
            for _ in range(min(self._missing_frames(), RING_FRAMES)):
                with self._cond:
                    captured_at = self._last_any
                self._deliver(self._silence, captured_at, silent=True)

    def _missing_frames(self) -> int:
        with self._cond:
            now = time.monotonic()
            quiet = now - (self._last_real if self._last_real is not None else self._started_at)
            # An open device may pause briefly (a busy machine); a closed one is filled in at once.
            threshold = self.silence_after_s if self._device_open else 2 * FRAME_S
            return int((now - self._last_any) / FRAME_S) if quiet > threshold else 0

    # -- the backend

    @abstractmethod
    def _open(self) -> None:
        """Open the device; raise DeviceUnavailable (retried) if it cannot be opened."""

    @abstractmethod
    def _read(self) -> np.ndarray:
        """Block for the next 20 ms: int16 samples, shape (960, channels)."""

    def _close(self) -> None:
        """Release the device (idempotent)."""


# -- the synthetic tone ------------------------------------------------------------------------


class SyntheticAudioSource(CapturingAudioSource):
    """A sine tone at `tone_hz` and `level_dbfs` (peak), real-time paced."""

    def __init__(
        self, name: str, channels: int = 1, tone_hz: float = 440.0, level_dbfs: float = -20.0, **timing: Any
    ) -> None:
        super().__init__(name, channels, **timing)
        self.tone_hz = tone_hz
        self._amplitude = FULL_SCALE * 10 ** (level_dbfs / 20)
        self._sample = 0
        self._next_at = 0.0

    def _open(self) -> None:
        self._next_at = time.monotonic()

    def _read(self) -> np.ndarray:
        self._next_at += FRAME_S
        delay = self._next_at - time.monotonic()
        if delay < -0.5:  # a stalled machine: do not burst to catch up
            self._next_at = time.monotonic()
        self._stopping.wait(max(0.0, delay))
        t = (self._sample + np.arange(FRAME_SAMPLES)) / SAMPLE_RATE
        self._sample = (self._sample + FRAME_SAMPLES) % (SAMPLE_RATE * 1000)
        wave = np.round(self._amplitude * np.sin(2 * np.pi * self.tone_hz * t)).astype(np.int16)
        return np.repeat(wave[:, np.newaxis], self.channels, axis=1)


# -- PyAudio -----------------------------------------------------------------------------------

_quiet_lock = threading.Lock()
_quieted = False
_ALSA_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
_JACK_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_handlers: list[Any] = []  # keeps the C callbacks alive


def _quiet_native_libraries() -> None:
    """Keep ALSA's and JACK's probing chatter (printed by PortAudio's init) out of stderr and the logs."""
    global _quieted
    with _quiet_lock:
        if _quieted:
            return
        _quieted = True
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        with contextlib.suppress(OSError, AttributeError, TypeError):
            alsa = ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2")
            handler = _ALSA_HANDLER(lambda *args: None)
            _handlers.append(handler)
            alsa.snd_lib_error_set_handler(handler)
        with contextlib.suppress(OSError, AttributeError, TypeError):
            jack = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
            for setter in ("jack_set_error_function", "jack_set_info_function"):
                handler = _JACK_HANDLER(lambda message: None)
                _handlers.append(handler)
                getattr(jack, setter)(handler)


# PortAudio's initialise/terminate/open/close touch global state and are not thread-safe: every
# driver thread does them under this lock (reads and writes on an open stream run outside it).
# Initialisation is reference-counted, so devices are rescanned (a replugged microphone found) only
# when no other PortAudio stream is open at that moment.
_PA_LOCK = threading.RLock()


def _portaudio() -> Any:
    """A fresh PortAudio instance; call with _PA_LOCK held."""
    _quiet_native_libraries()
    import pyaudio

    return pyaudio.PyAudio()


def _devices(pa: Any, direction: str) -> list[dict[str, Any]]:
    key = "maxInputChannels" if direction == "input" else "maxOutputChannels"
    out = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if int(info.get(key, 0)) > 0:
            host_api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
            out.append(
                {
                    "index": index,
                    "name": str(info["name"]),
                    "channels": int(info[key]),
                    "default_rate": float(info["defaultSampleRate"]),
                    "host_api": str(host_api),
                }
            )
    return out


def _pick(devices: list[dict[str, Any]], wanted: str, channels: int, direction: str) -> dict[str, Any]:
    """The first device whose name contains `wanted` (case-insensitive) and has enough channels."""
    matches = [d for d in devices if wanted.lower() in d["name"].lower() and d["channels"] >= channels]
    if matches:
        return matches[0]
    names = ", ".join(d["name"] for d in devices) or "none"
    raise DeviceUnavailable(f"no {direction} device matching {wanted!r} with {channels} channel(s) (found: {names})")


def _find_device(pa: Any, wanted: str, channels: int, direction: str) -> dict[str, Any]:
    devices = _devices(pa, direction)
    if wanted:
        return _pick(devices, wanted, channels, direction)
    try:
        default = pa.get_default_input_device_info() if direction == "input" else pa.get_default_output_device_info()
    except OSError as err:
        raise DeviceUnavailable(f"no default {direction} device") from err
    return _pick([d for d in devices if d["index"] == default["index"]], "", channels, direction)


def _list(direction: str) -> list[dict[str, Any]]:
    with _PA_LOCK:
        pa = _portaudio()
        try:
            devices = _devices(pa, direction)
            for device in devices:
                device["rates"] = _rates(pa, device, direction)
            return devices
        finally:
            pa.terminate()


def _rates(pa: Any, device: dict[str, Any], direction: str) -> list[int]:
    """The usual rates the device accepts as 16-bit mono."""
    ok = []
    for rate in (16_000, 44_100, SAMPLE_RATE):
        where = {f"{direction}_device": device["index"], f"{direction}_channels": 1, f"{direction}_format": 8}
        with contextlib.suppress(ValueError, OSError):
            if pa.is_format_supported(rate, **where):
                ok.append(rate)
    return ok


def list_microphones() -> list[dict[str, Any]]:
    """PortAudio input devices: index, name, channels, default rate, host API (slow-ish: call from a thread)."""
    return _list("input")


def list_speakers() -> list[dict[str, Any]]:
    """PortAudio output devices, as `list_microphones`."""
    return _list("output")


def probe_audio_device(device: str, channels: int = 1) -> str | None:
    """A problem finding the input device `device` names (a substring; empty = default), or None."""
    with _PA_LOCK:
        pa = _portaudio()
        try:
            _find_device(pa, device, channels, "input")
        except DeviceUnavailable as err:
            return str(err)
        finally:
            pa.terminate()
    return None


class _PortAudioStream:
    """One PortAudio instance and stream, opened and closed under the process-wide PortAudio lock."""

    def __init__(self) -> None:
        self._pa: Any = None
        self._stream: Any = None

    def open(self, device: str, channels: int, direction: str) -> Any:
        """Open a 48 kHz int16 stream of 20 ms buffers on the device whose name contains `device`."""
        with _PA_LOCK:
            self._pa = _portaudio()
            info = _find_device(self._pa, device, channels, direction)
            try:
                self._stream = self._pa.open(
                    format=8,  # paInt16
                    channels=channels,
                    rate=SAMPLE_RATE,
                    input=direction == "input",
                    output=direction == "output",
                    frames_per_buffer=FRAME_SAMPLES,
                    **{f"{direction}_device_index": info["index"]},
                )
            except (OSError, ValueError) as err:
                raise DeviceUnavailable(f"cannot open {info['name']!r} at {SAMPLE_RATE} Hz: {err}") from err
            return self._stream

    def close(self) -> None:
        """Stop and close the stream and terminate PortAudio (idempotent)."""
        with _PA_LOCK:
            stream, self._stream = self._stream, None
            pa, self._pa = self._pa, None
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.stop_stream()
                with contextlib.suppress(OSError):
                    stream.close()
            if pa is not None:
                pa.terminate()


class PyAudioSource(CapturingAudioSource):
    """A microphone through PortAudio, chosen by a substring of its name, 48 kHz int16 in 20 ms frames."""

    def __init__(self, name: str, device: str = "", channels: int = 1, **timing: Any) -> None:
        super().__init__(name, channels, **timing)
        self.device = device
        self._port = _PortAudioStream()
        self._stream: Any = None

    def _open(self) -> None:
        self._stream = self._port.open(self.device, self.channels, "input")

    def _read(self) -> np.ndarray:
        try:
            data = self._stream.read(FRAME_SAMPLES, exception_on_overflow=False)
        except (OSError, ValueError) as err:
            raise DeviceUnavailable(f"microphone read failed: {err}") from err
        pcm = np.frombuffer(data, dtype=np.int16)
        if pcm.size != FRAME_SAMPLES * self.channels:
            raise DeviceUnavailable(f"short read: {pcm.size} samples")
        return pcm.reshape(FRAME_SAMPLES, self.channels)

    def _close(self) -> None:
        self._stream = None
        self._port.close()


# -- sinks -------------------------------------------------------------------------------------


class AudioSink(Device):
    """A speaker: frames handed to `play` are heard in order; a slow device drops the oldest."""

    @abstractmethod
    def play(self, frame: AudioFrame) -> None:
        """Queue a frame (never blocks; keeps at most ~200 ms queued)."""

    # stats(): `delivered` = frames played, `dropped` = frames thrown away.


class _QueueSink(AudioSink):
    """The queue and thread every sink shares; backends implement `_open`, `_write`, `_close`."""

    def __init__(self, name: str, channels: int = 1, queue_frames: int = 10, **timing: Any) -> None:
        self.name = name
        self.channels = channels
        self._queue: deque[AudioFrame] = deque(maxlen=queue_frames)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(timing.get("backoff_first_s", 0.5), timing.get("backoff_max_s", 10.0))
        self._played = 0
        self._dropped = 0
        self._problem = ""
        self._open_ok = False

    def start(self) -> None:
        """Start the playback thread (no-op if running)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name=f"speaker:{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop and join the playback thread (idempotent)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def play(self, frame: AudioFrame) -> None:
        """Queue a frame, dropping the oldest queued one if the queue is full."""
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self._dropped += 1
            self._queue.append(frame)
            self._cond.notify_all()

    def stats(self) -> CaptureStats:
        """`ok` while the device is open, `down` with the reason otherwise."""
        with self._cond:
            status: CaptureStatus = "ok" if self._open_ok else "down"
            return CaptureStats(status, 0.0, self._dropped, None, self._problem, self._played)

    def _next(self) -> AudioFrame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._stopping.is_set() or bool(self._queue), 0.1)
            return self._queue.popleft() if self._queue and not self._stopping.is_set() else None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._open()
                self._open_ok = True
                self._backoff.reset()
                self._play_queued()
            except DriverError as err:
                with self._cond:
                    self._problem = str(err)
            finally:
                self._open_ok = False
                self._close()
            self._stopping.wait(self._backoff.next())

    def _play_queued(self) -> None:
        while not self._stopping.is_set():
            frame = self._next()
            if frame is not None:
                self._write(frame)
                with self._cond:
                    self._played += 1

    def _open(self) -> None:
        """Open the device."""

    @abstractmethod
    def _write(self, frame: AudioFrame) -> None:
        """Play one frame (blocks for about its duration)."""

    def _close(self) -> None:
        """Release the device (idempotent)."""


class SyntheticAudioSink(_QueueSink):
    """A speaker that plays nothing, in real time; keeps the level of what it was given (demo, tests)."""

    def __init__(self, name: str, channels: int = 1, **timing: Any) -> None:
        super().__init__(name, channels, **timing)
        self.last_level = (FLOOR_DBFS, FLOOR_DBFS)

    def _write(self, frame: AudioFrame) -> None:
        self.last_level = dbfs(frame.pcm)
        self._stopping.wait(FRAME_S)


class PyAudioSink(_QueueSink):
    """A speaker through PortAudio, chosen by a substring of its name (a remote student's question)."""

    def __init__(self, name: str, device: str = "", channels: int = 1, **timing: Any) -> None:
        super().__init__(name, channels, **timing)
        self.device = device
        self._port = _PortAudioStream()
        self._stream: Any = None

    def _open(self) -> None:
        self._stream = self._port.open(self.device, self.channels, "output")

    def _write(self, frame: AudioFrame) -> None:
        pcm = frame.pcm
        if pcm.shape[1] != self.channels:
            pcm = np.repeat(pcm[:, :1], self.channels, axis=1) if self.channels > pcm.shape[1] else pcm[:, :1]
        try:
            self._stream.write(np.ascontiguousarray(pcm).tobytes())
        except (OSError, ValueError) as err:
            raise DeviceUnavailable(f"speaker write failed: {err}") from err

    def _close(self) -> None:
        self._stream = None
        self._port.close()


# -- factories ---------------------------------------------------------------------------------


def open_audio_source(
    name: str, source: str, device: str = "", channels: int = 1, tone_hz: float = 440.0, **timing: Any
) -> CapturingAudioSource:
    """A (not yet started) microphone from plain config values."""
    if source == "synthetic":
        return SyntheticAudioSource(name, channels, tone_hz, **timing)
    if source == "pyaudio":
        return PyAudioSource(name, device, channels, **timing)
    raise DeviceSpecError(f"unknown audio source {source!r}: use synthetic or pyaudio")


def open_audio_sink(name: str, sink: str, device: str = "", channels: int = 1, **timing: Any) -> AudioSink:
    """A (not yet started) speaker from plain config values."""
    if sink == "synthetic":
        return SyntheticAudioSink(name, channels, **timing)
    if sink == "pyaudio":
        return PyAudioSink(name, device, channels, **timing)
    raise DeviceSpecError(f"unknown audio sink {sink!r}: use synthetic or pyaudio")
