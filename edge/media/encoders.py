"""The shared encoders: one H.264 encoder per video layer and one Opus encoder, each in its own thread.

Every viewer and the recorder get the same packets (see `packets.PacketFanout`); nothing is encoded
per viewer. Keyframes come periodically (the GOP) and on request, rate-limited so that one viewer
on a bad link cannot make everyone pay for keyframes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np
from av.video.frame import PictureType

from edge.media.packets import AUDIO_LAYER, AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedPacket

log = logging.getLogger(__name__)

POLL_S = 0.2
KEYFRAME_MIN_GAP_S = 0.3
OPUS_FRAME = 960
AUDIO_SLACK = AUDIO_TIME_BASE.denominator // 10  # 100 ms of capture jitter before the audio clock re-anchors
AUDIO_BURST_MAX = 2 * AUDIO_TIME_BASE.denominator  # a lead longer than a device's buffer is a clock step, not a burst


class CapturedFrame(Protocol):
    """What the encoder needs of anything captured: its place in the capture and when it was taken."""

    @property
    def index(self) -> int: ...
    @property
    def captured_at(self) -> float: ...


class VideoFrameLike(CapturedFrame, Protocol):
    """What the encoder needs of a captured picture (capture's `VideoFrame`)."""

    @property
    def yuv(self) -> np.ndarray: ...  # I420, shape (h*3//2, w), uint8
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


class AudioFrameLike(CapturedFrame, Protocol):
    """What the encoder needs of captured sound (capture's `AudioFrame`)."""

    @property
    def pcm(self) -> np.ndarray: ...  # int16, shape (960, channels)
    @property
    def channels(self) -> int: ...


class VideoFeed(Protocol):
    """A picture source the encoder thread may block on (capture's `VideoSource`)."""

    def wait_newer(self, after_index: int, timeout: float) -> VideoFrameLike | None: ...


class AudioFeed(Protocol):
    """A sound source the encoder thread may block on (capture's `AudioSource`)."""

    def read_after(self, after_index: int, timeout: float) -> AudioFrameLike | None: ...
    def latest(self) -> AudioFrameLike | None: ...


Publish = Callable[[EncodedPacket], None]


@dataclass(frozen=True)
class VideoLayer:
    """One encoded picture size: what it is called, its size, rate and bitrate."""

    name: str
    width: int
    height: int
    fps: int
    kbps: int


class KeyframeGate:
    """Keyframe requests, rate-limited: a request in the quiet period is kept and served when it ends."""

    def __init__(self, min_gap_s: float = KEYFRAME_MIN_GAP_S) -> None:
        self._min_gap_s = min_gap_s
        self._wanted = False
        self._last = -1e9
        self._lock = threading.Lock()
        self.requests = 0

    def request(self) -> None:
        """Ask for a keyframe (any thread)."""
        with self._lock:
            self._wanted = True
            self.requests += 1

    def take(self, now: float) -> bool:
        """True when the next picture should be forced to a keyframe (the encoder thread)."""
        with self._lock:
            if self._wanted and now - self._last >= self._min_gap_s:
                self._wanted = False
                self._last = now
                return True
            return False


class _EncoderThread:
    """A named thread with a stop flag; `stop()` joins it (call it off the event loop)."""

    thread_name = "encoder"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error = ""

    def start(self) -> None:
        """Start encoding."""
        self._thread = threading.Thread(target=self._guarded, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join (idempotent, blocking)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"
            log.exception("%s failed", self.thread_name)

    def _run(self) -> None:
        raise NotImplementedError


class VideoLayerEncoder(_EncoderThread):
    """Encodes the latest camera picture for one layer (H.264 constrained baseline, libx264 real time)."""

    def __init__(
        self,
        layer: VideoLayer,
        feed: Callable[[], VideoFeed | None],
        publish: Publish,
        origin: float,
        keyframe_interval_s: float = 2.0,
        keyframe_min_gap_s: float = KEYFRAME_MIN_GAP_S,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.thread_name = f"encoder:{layer.name}"
        self._feed = feed
        self._publish = publish
        self._origin = origin
        self._gop = max(1, round(layer.fps * keyframe_interval_s))
        self.keyframes = KeyframeGate(keyframe_min_gap_s)
        self._codec: av.VideoCodecContext | None = None
        self._last_pts = -1
        self._last_at = -1e9
        self.frames = 0
        self.keyframes_sent = 0
        self.forced_keyframes = 0
        self.last_keyframe_at = 0.0
        self.encode_seconds = 0.0

    def request_keyframe(self) -> None:
        """Ask for a keyframe soon (rate-limited; any thread)."""
        self.keyframes.request()

    def _open_codec(self) -> av.VideoCodecContext:
        layer = self.layer
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = layer.width, layer.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = Fraction(layer.fps, 1)
        codec.bit_rate = layer.kbps * 1000
        codec.gop_size = self._gop
        codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "level": "3.1",
            "forced-idr": "1",
            "x264-params": (
                f"scenecut=0:keyint={self._gop}:min-keyint={self._gop}"
                f":vbv-maxrate={layer.kbps}:vbv-bufsize={layer.kbps // 2}"
            ),
        }
        return codec

    def _run(self) -> None:
        index = -1
        period = 1.0 / self.layer.fps
        self._codec = self._open_codec()
        try:
            while not self._stop.is_set():
                feed = self._feed()
                frame = feed.wait_newer(index, POLL_S) if feed is not None else None
                if frame is None:
                    if feed is None:
                        self._stop.wait(POLL_S)
                    continue
                index = frame.index
                if frame.captured_at - self._last_at < period * 0.85:
                    continue  # a lower rate than the camera's: skip this picture
                self._last_at = frame.captured_at
                self._encode(frame)
        finally:
            self._codec = None

    def _picture(self, frame: VideoFrameLike) -> av.VideoFrame:
        picture = av.VideoFrame.from_ndarray(frame.yuv, format="yuv420p")
        if (frame.width, frame.height) != (self.layer.width, self.layer.height):
            picture = picture.reformat(self.layer.width, self.layer.height)
        pts = max(round((frame.captured_at - self._origin) * VIDEO_TIME_BASE.denominator), self._last_pts + 1)
        self._last_pts = pts
        picture.pts = pts
        picture.time_base = VIDEO_TIME_BASE
        return picture

    def _encode(self, frame: VideoFrameLike) -> None:
        began = time.perf_counter()
        picture = self._picture(frame)
        forced = self.keyframes.take(time.monotonic())
        picture.pict_type = PictureType.I if forced else PictureType.NONE
        assert self._codec is not None
        packets = self._codec.encode(picture)
        self.encode_seconds += time.perf_counter() - began
        self.frames += 1
        for packet in packets:
            self._emit(packet, frame.captured_at, forced)

    def _emit(self, packet: av.Packet[Any], captured_at: float, forced: bool) -> None:
        keyframe = bool(packet.is_keyframe)
        if keyframe:
            self.keyframes_sent += 1
            self.forced_keyframes += int(forced)
            self.last_keyframe_at = time.monotonic()
        duration = VIDEO_TIME_BASE.denominator // self.layer.fps
        pts = packet.pts if packet.pts is not None else self._last_pts
        self._publish(
            EncodedPacket(self.layer.name, bytes(packet), pts, VIDEO_TIME_BASE, keyframe, captured_at, duration)
        )


class AudioEncoder(_EncoderThread):
    """Encodes the microphone to Opus, 20 ms per packet (silence while `muted()` says so)."""

    thread_name = "encoder:audio"

    def __init__(
        self,
        feed: Callable[[], AudioFeed | None],
        publish: Publish,
        origin: float,
        kbps: int = 48,
        muted: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self._feed = feed
        self._muted = muted
        self._publish = publish
        self._origin = origin
        self._kbps = kbps
        self._codec: av.AudioCodecContext | None = None
        self._channels = 0
        self._next_pts: int | None = None
        self._pts_shift: int | None = None
        self.packets = 0
        self.dropped_frames = 0  # sound the capture clock had already covered (bursts after a stall)

    def _open_codec(self, channels: int) -> av.AudioCodecContext:
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = AUDIO_TIME_BASE.denominator
        codec.layout = "stereo" if channels == 2 else "mono"
        codec.format = "s16"
        codec.bit_rate = self._kbps * 1000
        codec.time_base = AUDIO_TIME_BASE
        codec.options = {"application": "voip"}
        return codec

    def _run(self) -> None:
        index: int | None = None
        try:
            while not self._stop.is_set():
                feed = self._feed()
                if feed is None:
                    self._stop.wait(POLL_S)
                    continue
                if index is None:
                    index = _before_newest(feed)
                frame = feed.read_after(index, POLL_S)
                if frame is not None:
                    index = frame.index
                    self._encode(frame)
        finally:
            self._codec = None

    def _pts_for(self, frame: AudioFrameLike) -> int | None:
        """The frame's pts on the capture clock; None for sound that clock has already covered."""
        clock = round((frame.captured_at - self._origin) * AUDIO_TIME_BASE.denominator)
        if self._next_pts is not None and AUDIO_SLACK < self._next_pts - clock <= AUDIO_BURST_MAX:
            # A device's catch-up burst after a stall (with silence already filled in for it):
            # encoding it would put the sound behind the picture for the rest of the lesson.
            return None
        if self._next_pts is None or abs(clock - self._next_pts) > AUDIO_SLACK:
            self._next_pts = max(clock, self._next_pts or 0)  # re-anchor after a gap, never backwards
        pts = self._next_pts
        self._next_pts = pts + len(frame.pcm)
        return pts

    def _encode(self, frame: AudioFrameLike) -> None:
        pts = self._pts_for(frame)
        if pts is None:
            self.dropped_frames += 1
            return
        if self._codec is None or frame.channels != self._channels:
            self._codec, self._channels = self._open_codec(frame.channels), frame.channels
        # Muted: the same frames, same cadence, as silence (viewers' players and the recording never stall).
        samples = np.zeros_like(frame.pcm) if self._muted() else frame.pcm
        pcm = np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo" if frame.channels == 2 else "mono")
        sound.sample_rate = AUDIO_TIME_BASE.denominator
        sound.pts = pts
        sound.time_base = AUDIO_TIME_BASE
        for packet in self._codec.encode(sound):
            self._emit(packet, sound.pts)

    def _emit(self, packet: av.Packet[Any], input_pts: int) -> None:
        if packet.pts is None:
            return
        if self._pts_shift is None:
            self._pts_shift = input_pts - packet.pts  # undo the codec's pre-skip so pts follow the clock
        pts = packet.pts + self._pts_shift
        captured_at = self._origin + pts / AUDIO_TIME_BASE.denominator
        self.packets += 1
        self._publish(EncodedPacket(AUDIO_LAYER, bytes(packet), pts, AUDIO_TIME_BASE, True, captured_at, OPUS_FRAME))


def _before_newest(feed: AudioFeed) -> int:
    """The index to read after so that encoding starts with the newest frame, not the second the ring still holds."""
    newest = feed.latest()
    return newest.index - 1 if newest is not None else -1
