"""The `signals` component: is the lesson's sound and picture worth sending? Checked before and during a lesson.

Four times a second it looks at the newest camera frame (a strided sample of about 160 columns
of luma and chroma, no copy of the frame, no resize) and at every microphone frame delivered
since the last look, and decides:

- `signal.microphone-silent`: the sound stayed below -60 dBFS (RMS over each look) for 10 s; it
  clears once it is above -55 dBFS for 2 s. A muted microphone (the teacher's mute) is not
  "silent": the mute is the teacher's choice and the panel shows it; a microphone that is down is
  its own component's problem.
- `signal.picture-black`: the mean luma is at most 30 (of 255) and at most 2 % of the points are
  above 48, for 3 s (a lens cap, a camera facing a dark bag).
- `signal.no-signal`: not black, and at least 97 % of the points are within 3 levels of the most
  common luma AND the same holds for both chroma planes, for 3 s. That is a flat card a capture
  card or camera generates when its input is gone (blue or grey "no signal", with at most a small
  logo or caption): a real sensor looking at a wall or a blank board always has noise and shading
  wider than 3 levels. A card of colour bars is not flat; it is static, so it reads as frozen.
- `signal.picture-frozen`: neither black nor flat, and fewer than 0.2 % of the points changed by
  more than 4 levels between two looks, for 5 s (a stuck HDMI source, a hung IP camera repeating
  its last frame). Sensor noise alone moves far more points than that.
- `signal.low-fps`: the camera delivered fewer than half the frames it should (its configured
  rate; a file's or IP camera's own lower rate) over 5 s; clears at 60 % for 2 s.

Picture checks pause (and clear) while the camera shows the driver's "camera offline" slate: the
camera component says what is wrong then. Each check raises its alarm (bus, health, /metrics, the
recording's event log) while true and clears it when fixed, with the hysteresis above so it does
not flap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.audio import FLOOR_DBFS, AudioFrame, CapturingAudioSource, dbfs
from drivers.camera import VideoFrame
from edge.core.component import Component
from edge.core.ports import AlarmBoard, MuteState
from edge.core.texts import N_
from edge.media.capture import CameraComponent, MicrophoneComponent
from sync.clock import monotonic

log = logging.getLogger(__name__)

PERIOD_S = 0.25  # four looks a second
SAMPLE_COLUMNS = 160  # luma points across the picture (the step between them follows the width)
AUDIO_FRAMES_MAX = 50  # the microphone ring holds ~1 s

SILENT_DBFS = -60.0
SOUND_DBFS = -55.0  # what a silent microphone must reach again to clear
BLACK_MEAN = 30.0
BLACK_BRIGHT_LUMA = 48
BLACK_BRIGHT_SHARE = 0.02
FLAT_LEVELS = 3
FLAT_SHARE = 0.97
MOVED_LEVELS = 4
STILL_SHARE = 0.002
SLOW_SHARE = 0.5  # of the rate the camera should deliver
RECOVERED_SHARE = 0.6

MICROPHONE_SILENT = "signal.microphone-silent"
PICTURE_BLACK = "signal.picture-black"
PICTURE_FROZEN = "signal.picture-frozen"
NO_SIGNAL = "signal.no-signal"
LOW_FPS = "signal.low-fps"
CHECKS = (MICROPHONE_SILENT, PICTURE_BLACK, PICTURE_FROZEN, NO_SIGNAL, LOW_FPS)

MESSAGES = {
    MICROPHONE_SILENT: N_("Microphone is silent: is it muted?"),
    PICTURE_BLACK: N_("The picture is black: is the lens cap on?"),
    PICTURE_FROZEN: N_("The picture is frozen"),
    NO_SIGNAL: N_("No picture from the camera: check the HDMI cable"),
    LOW_FPS: N_("The camera is slow: %(fps)s frames a second of %(wanted)s"),
}


@dataclass(frozen=True)
class Timings:
    """How long a condition must hold to raise its alarm, and be gone to clear it (seconds).

    `slow_after_s` must exceed the camera driver's 2 s rate window: a camera that has just
    (re)started reads slow until its window is full.
    """

    silent_after_s: float = 10.0
    black_after_s: float = 3.0
    no_signal_after_s: float = 3.0
    frozen_after_s: float = 5.0
    slow_after_s: float = 5.0
    clear_after_s: float = 2.0


class Hysteresis:
    """A condition that must hold `raise_after_s` to turn on and be gone `clear_after_s` to turn off."""

    def __init__(self, raise_after_s: float, clear_after_s: float) -> None:
        self.raise_after_s = raise_after_s
        self.clear_after_s = clear_after_s
        self.on = False
        self._since: float | None = None

    def update(self, condition: bool, now: float) -> bool:
        """Feed the condition as seen at `now` (monotonic); True while the check is on."""
        if condition == self.on:
            self._since = None
            return self.on
        if self._since is None:
            self._since = now
        if now - self._since >= (self.raise_after_s if condition else self.clear_after_s):
            self.on, self._since = condition, None
        return self.on

    def reset(self) -> None:
        """Off at once (the condition cannot be judged, or it was waived)."""
        self.on, self._since = False, None


# -- the picture -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PictureLook:
    """What one look at a frame found (shares are of the sampled points)."""

    mean: float  # luma, 0..255
    bright_share: float  # luma above BLACK_BRIGHT_LUMA
    flat: bool  # luma and both chroma planes within FLAT_LEVELS of their most common value, FLAT_SHARE of points
    moved_share: float | None  # luma changed by more than MOVED_LEVELS since the previous look; None for the first

    @property
    def black(self) -> bool:
        """A black picture."""
        return self.mean <= BLACK_MEAN and self.bright_share <= BLACK_BRIGHT_SHARE

    @property
    def no_signal(self) -> bool:
        """A flat generated card that is not black."""
        return self.flat and not self.black

    @property
    def still(self) -> bool:
        """The same picture as the previous look, within sensor noise (black and flat pictures excluded)."""
        return self.moved_share is not None and self.moved_share < STILL_SHARE and not self.flat and not self.black


def _planes(yuv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strided views (no copy) of the luma and both chroma planes of an I420 frame."""
    step = max(1, width // SAMPLE_COLUMNS)
    half = max(1, step // 2)
    u = yuv[height : height + height // 4].reshape(height // 2, width // 2)
    v = yuv[height + height // 4 : height * 3 // 2].reshape(height // 2, width // 2)
    return yuv[:height:step, ::step], u[::half, ::half], v[::half, ::half]


def _flat_share(plane: np.ndarray) -> tuple[float, np.ndarray]:
    """Share of points within FLAT_LEVELS of the plane's most common value, and the plane's histogram."""
    histogram = np.bincount(plane.ravel(), minlength=256)
    mode = int(histogram.argmax())
    near = histogram[max(0, mode - FLAT_LEVELS) : mode + FLAT_LEVELS + 1].sum()
    return float(near) / plane.size, histogram


def look(yuv: np.ndarray, width: int, height: int, previous: np.ndarray | None) -> tuple[PictureLook, np.ndarray]:
    """Judge one I420 frame; also returns its luma sample, the `previous` of the next look."""
    luma, u, v = _planes(yuv, width, height)
    luma_flat, histogram = _flat_share(luma)
    flat = luma_flat >= FLAT_SHARE and _flat_share(u)[0] >= FLAT_SHARE and _flat_share(v)[0] >= FLAT_SHARE
    count = luma.size
    mean = float(np.dot(histogram, np.arange(256))) / count
    bright = float(histogram[BLACK_BRIGHT_LUMA + 1 :].sum()) / count
    sample = luma.astype(np.int16)
    moved = None
    if previous is not None and previous.shape == sample.shape:
        moved = float(np.count_nonzero(np.abs(sample - previous) > MOVED_LEVELS)) / count
    return PictureLook(mean, bright, flat, moved), sample


# -- the sound ---------------------------------------------------------------------------------


class SoundFollower:
    """Follows a microphone's frames and gives the RMS level of those delivered since the last call."""

    def __init__(self, source: CapturingAudioSource) -> None:
        self._source = source
        self._index: int | None = None

    def level(self) -> float | None:
        """RMS dBFS of the new frames (device frames only), or None when no device frame came."""
        frames: list[AudioFrame] = []
        if self._index is None:
            newest = self._source.latest()
            self._index = newest.index - 1 if newest is not None else 0
        while len(frames) < AUDIO_FRAMES_MAX and (frame := self._source.read_after(self._index, 0)) is not None:
            self._index = frame.index
            if not frame.silent:  # silence the driver filled in for a missing device says nothing of the room
                frames.append(frame)
        if not frames:
            return None
        return dbfs(np.concatenate([frame.pcm for frame in frames]))[0]


# -- the checks --------------------------------------------------------------------------------


class SignalChecks(Component):
    """Watches the lesson's camera and microphone and raises the `signal.*` alarms in plain words."""

    name = "signals"

    def __init__(
        self,
        alarms: AlarmBoard,
        mute: MuteState,
        camera: CameraComponent | None,
        microphone: MicrophoneComponent | None,
        timings: Timings = Timings(),
        period_s: float = PERIOD_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self._alarms = alarms
        self._mute = mute
        self._camera = camera
        self._microphone = microphone
        self._period_s = period_s
        self._clock = clock or monotonic
        clear = timings.clear_after_s
        self._checks = {
            MICROPHONE_SILENT: Hysteresis(timings.silent_after_s, clear),
            PICTURE_BLACK: Hysteresis(timings.black_after_s, clear),
            NO_SIGNAL: Hysteresis(timings.no_signal_after_s, clear),
            PICTURE_FROZEN: Hysteresis(timings.frozen_after_s, clear),
            LOW_FPS: Hysteresis(timings.slow_after_s, clear),
        }
        self._sound: SoundFollower | None = None
        self._previous: np.ndarray | None = None
        self._last_index = -1
        self._level = FLOOR_DBFS
        self._fps = 0.0
        self.looks = 0

    async def start(self) -> None:
        """Begin following the microphone from its newest frame."""
        self._sound = SoundFollower(self._microphone.source) if self._microphone else None
        self._report()

    async def run(self) -> None:
        """Look four times a second until cancelled."""
        while True:
            self.tick()
            await asyncio.sleep(self._period_s)

    async def stop(self) -> None:
        """Clear every alarm this component raised (a restart judges afresh)."""
        for name in self._checks:
            self._waive(name)

    def tick(self) -> None:
        """One look at the picture and the sound; raise or clear the alarms."""
        now = self._clock()
        self._check_sound(now)
        self._check_picture(now)
        self._check_rate(now)
        self.looks += 1
        self._report()

    # -- sound

    def _check_sound(self, now: float) -> None:
        check = self._checks[MICROPHONE_SILENT]
        level = self._sound.level() if self._sound else None
        if self._microphone is None or self._mute.muted or self._microphone.source.stats().status == "down":
            self._waive(MICROPHONE_SILENT)
            return
        if level is None:
            return  # no new frame in this look: nothing to judge
        self._level = level
        threshold = SOUND_DBFS if check.on else SILENT_DBFS
        self._set(MICROPHONE_SILENT, check.update(level < threshold, now))

    # -- picture

    def _check_picture(self, now: float) -> None:
        frame = self._new_frame()
        if frame is None:
            return
        if frame.slate:
            self._previous = None
            for name in (PICTURE_BLACK, NO_SIGNAL, PICTURE_FROZEN):
                self._waive(name)
            return
        found, self._previous = look(frame.yuv, frame.width, frame.height, self._previous)
        self._set(PICTURE_BLACK, self._checks[PICTURE_BLACK].update(found.black, now))
        self._set(NO_SIGNAL, self._checks[NO_SIGNAL].update(found.no_signal, now))
        self._set(PICTURE_FROZEN, self._checks[PICTURE_FROZEN].update(found.still, now))

    def _new_frame(self) -> VideoFrame | None:
        """The newest frame if it is new since the last look (a camera that delivers nothing is judged by its rate)."""
        frame = self._camera.source.latest() if self._camera else None
        if frame is None or frame.index == self._last_index:
            return None
        self._last_index = frame.index
        return frame

    def _check_rate(self, now: float) -> None:
        check = self._checks[LOW_FPS]
        source = self._camera.source if self._camera else None
        stats = source.stats() if source else None
        if source is None or stats is None or stats.status == "down" or stats.last_frame_age_s is None:
            self._waive(LOW_FPS)
            return
        self._fps, wanted = stats.fps, source.expected_fps
        share = RECOVERED_SHARE if check.on else SLOW_SHARE
        self._set(LOW_FPS, check.update(self._fps < wanted * share, now), fps=round(self._fps), wanted=round(wanted))

    # -- alarms and health

    def _waive(self, name: str) -> None:
        """The check cannot be judged now (or does not apply): off at once."""
        self._checks[name].reset()
        self._alarms.clear_alarm(name)

    def _set(self, name: str, on: bool, **params: Any) -> None:
        if on and name not in self._alarms.now():
            self._alarms.raise_alarm(name, MESSAGES[name], **params)
        elif not on:
            self._alarms.clear_alarm(name)

    def states(self) -> dict[str, bool]:
        """Each check by its short name (`microphone-silent`, ...): True while its alarm is raised."""
        return {name.removeprefix("signal."): check.on for name, check in self._checks.items()}

    def _report(self) -> None:
        alarms = self._alarms.now()
        raised = [alarms[name] for name in CHECKS if name in alarms]
        detail = "; ".join(raised) if raised else "sound and picture look fine"
        if self._mute.muted:
            detail = f"microphone muted; {detail}"
        self.set_health("ok", detail, checks=self.states(), level_dbfs=round(self._level, 1), camera_fps=self._fps)
