"""Signal checks: each detector on synthetic pictures and sound, the hysteresis, the component with real sources."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from drivers.audio import FRAME_SAMPLES, SyntheticAudioSource
from drivers.camera import CapturingVideoSource, SyntheticVideoSource
from edge import wiring
from edge.box import Box
from edge.core.config import BoxConfig, CameraConfig, MicrophoneConfig
from edge.core.events import EventBus
from edge.doors.web.app import create_app
from edge.health.metrics import make_registry, render
from edge.media.capture import CameraComponent, MicrophoneComponent
from edge.media.encoders import AudioEncoder
from edge.media.packets import EncodedPacket
from edge.media.signals import (
    LOW_FPS,
    MESSAGES,
    MICROPHONE_SILENT,
    NO_SIGNAL,
    PICTURE_BLACK,
    PICTURE_FROZEN,
    Hysteresis,
    SignalChecks,
    SoundFollower,
    Timings,
    look,
)
from tests.stream_fixture import live_box, small_config

W, H = 320, 240
RNG = np.random.default_rng(7)
# Short; the rate check is off but where it is tested (a busy test machine starves the stand-in cameras).
QUICK = Timings(
    silent_after_s=0.6,
    black_after_s=0.4,
    no_signal_after_s=0.4,
    frozen_after_s=0.6,
    slow_after_s=1e9,
    clear_after_s=0.3,
)
# The driver measures fps over its last 2 s: a just-started camera reads slow until then.
RATE_ONLY = Timings(frozen_after_s=1e9, slow_after_s=2.5, clear_after_s=0.3)


def i420(y: float | np.ndarray, u: float = 128, v: float = 128, noise: float = 0.0) -> np.ndarray:
    """A W x H I420 frame of the given planes, with Gaussian sensor noise of `noise` levels."""
    frame = np.empty((H * 3 // 2, W), dtype=np.float64)
    frame[:H] = y
    frame[H : H + H // 4] = u
    frame[H + H // 4 :] = v
    if noise:
        frame += RNG.normal(0, noise, frame.shape)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def scene() -> np.ndarray:
    """A classroom-like luma: a gradient wall, a dark desk, a bright window."""
    y = np.tile(np.linspace(90, 160, W), (H, 1))
    y[160:, :] = 60
    y[20:80, 220:300] = 230
    return y


# -- hysteresis ----------------------------------------------------------------------------------


def test_hysteresis_raises_after_holding_and_clears_after_gone() -> None:
    check = Hysteresis(raise_after_s=10, clear_after_s=2)
    assert not check.update(True, 0.0)
    assert not check.update(True, 9.9)
    assert check.update(True, 10.0)
    assert check.update(False, 11.0)  # gone for 0 s
    assert check.update(False, 12.9)
    assert not check.update(False, 13.0)


def test_hysteresis_does_not_flap_on_a_blip() -> None:
    check = Hysteresis(raise_after_s=1, clear_after_s=2)
    check.update(True, 0.0)
    assert check.update(True, 1.0)
    check.update(False, 1.5)  # one loud word in a silent room
    assert check.update(True, 1.75)
    assert check.update(False, 3.0)
    assert check.update(False, 4.9)  # the clock of "gone" restarted after the blip
    check.update(True, 0.0 + 5.0)
    check.update(False, 5.1)
    assert not check.update(False, 7.1)
    assert not check.update(True, 7.5)  # raising starts from scratch
    check.reset()
    assert not check.on


# -- the picture ----------------------------------------------------------------------------------


def test_a_black_picture_with_sensor_noise_is_black() -> None:
    found, _ = look(i420(18, noise=2), W, H, None)
    assert found.black
    assert not found.no_signal
    assert found.moved_share is None


def test_a_dark_room_with_a_window_is_not_black() -> None:
    y = np.full((H, W), 20.0)
    y[40:120, 100:200] = 200  # 10 % of the picture is a bright window
    found, _ = look(i420(y, noise=2), W, H, None)
    assert found.mean < 40
    assert not found.black


def test_a_blue_no_signal_card_with_a_small_logo_is_no_signal() -> None:
    card = i420(41, u=240, v=110)
    card[110:130, 140:180] = 235  # a caption: 1 % of the picture
    found, _ = look(card, W, H, None)
    assert found.flat
    assert found.no_signal
    assert not found.black
    grey, _ = look(i420(128), W, H, None)
    assert grey.no_signal


def test_a_blank_wall_seen_by_a_real_sensor_is_not_flat() -> None:
    wall = np.tile(np.linspace(180, 200, W), (H, 1))  # a whiteboard, lit from one side
    found, _ = look(i420(wall, noise=2.0), W, H, None)
    assert not found.flat
    assert not found.no_signal
    noisy_flat, _ = look(i420(190, noise=2.5), W, H, None)  # even lit evenly, the noise is wider than 3 levels
    assert not noisy_flat.no_signal


def test_the_same_picture_again_is_still_and_sensor_noise_is_not() -> None:
    base = i420(scene())
    _, previous = look(base, W, H, None)
    again, _ = look(base.copy(), W, H, previous)
    assert again.still
    jitter = np.clip(base.astype(np.int16) + RNG.integers(-1, 2, base.shape), 0, 255).astype(np.uint8)
    recompressed, _ = look(jitter, W, H, previous)  # a re-encoded keyframe of the same picture: +-1 level
    assert recompressed.still
    _, noisy_previous = look(i420(scene(), noise=2), W, H, None)
    live, _ = look(i420(scene(), noise=2), W, H, noisy_previous)
    assert live.moved_share is not None
    assert live.moved_share > 0.05
    assert not live.still


def test_black_and_flat_pictures_are_never_called_frozen() -> None:
    _, previous = look(i420(16), W, H, None)
    black, _ = look(i420(16), W, H, previous)
    assert black.black
    assert not black.still
    _, previous = look(i420(41, 240, 110), W, H, None)
    card, _ = look(i420(41, 240, 110), W, H, previous)
    assert card.no_signal
    assert not card.still


def test_the_synthetic_camera_moves() -> None:
    source = SyntheticVideoSource("demo", W, H, 30)
    first, second = source._pattern(0), source._pattern(8)  # two ticks of its scroll
    _, previous = look(first, W, H, None)
    found, _ = look(second, W, H, previous)
    assert not found.still
    assert not found.black
    assert not found.no_signal


# -- the sound ------------------------------------------------------------------------------------


def test_sound_follower_measures_every_frame_since_the_last_look() -> None:
    loud = SyntheticAudioSource("loud", level_dbfs=-20)
    quiet = SyntheticAudioSource("quiet", level_dbfs=-75)
    loud.start()
    quiet.start()
    try:
        followers = SoundFollower(loud), SoundFollower(quiet)
        for source in (loud, quiet):
            first = source.latest()
            deadline = time.monotonic() + 5
            while source.latest() is None or (first and source.latest().index < first.index + 5):  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.02)
        levels = [follower.level() for follower in followers]
        assert levels[0] is not None
        assert -24 < levels[0] < -22  # a sine peaking at -20 dBFS
        assert levels[1] is not None
        assert levels[1] < -60
    finally:
        loud.stop()
        quiet.stop()


# -- the component with real sources ---------------------------------------------------------------


class SteadyCamera(CapturingVideoSource):
    """A camera backend: one scene at `rate` frames a second, fresh sensor noise of `noise` levels in each frame.

    A device stand-in (a USB camera in low light delivers 6 of its 30 frames a second).
    """

    def __init__(self, picture: np.ndarray, fps: float, rate: float, noise: float = 0.0) -> None:
        super().__init__("stand-in", W, H, fps, loss_timeout_s=5.0)
        self.picture, self.rate, self.noise = picture, rate, noise
        self._rng = np.random.default_rng(11)  # this thread's own: a Generator is not thread-safe

    def _open(self) -> None:
        self._due = time.monotonic()

    def _grab(self) -> tuple[np.ndarray, float]:
        self._due = max(self._due + 1.0 / self.rate, time.monotonic() - 0.5)
        self._stopping.wait(max(0.0, self._due - time.monotonic()))
        picture = self.picture
        if self.noise:
            picture = np.clip(picture + self._rng.normal(0, self.noise, picture.shape), 0, 255).astype(np.uint8)
        return picture, time.monotonic()


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    config = BoxConfig(cameras=[CameraConfig(width=W, height=H, fps=10)], microphones=[MicrophoneConfig(name="room")])
    config.box.state_dir = tmp_path / "state"
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    box = Box(config, bus)
    box.open()
    yield box
    box.close()


@pytest.fixture
async def devices(box: Box) -> AsyncIterator[tuple[CameraComponent, MicrophoneComponent]]:
    camera = CameraComponent(box.bus, box.config.cameras[0])
    mic = MicrophoneComponent(box.bus, box.services.mute, box.config.microphones[0])
    yield camera, mic
    await asyncio.to_thread(camera.source.stop)
    await asyncio.to_thread(mic.source.stop)


async def _run_checks(checks: SignalChecks, until: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not until():
        assert time.monotonic() < deadline, "timed out"
        checks.tick()
        await asyncio.sleep(0.05)


def _install(camera: CameraComponent, mic: MicrophoneComponent, picture: CapturingVideoSource, level: float) -> None:
    camera.source = picture
    mic.source = SyntheticAudioSource("room", level_dbfs=level)
    camera.source.start()
    mic.source.start()


async def test_a_silent_microphone_raises_then_mute_waives_it_and_sound_clears_it(
    box: Box, devices: tuple[CameraComponent, MicrophoneComponent]
) -> None:
    camera, mic = devices
    _install(camera, mic, SteadyCamera(i420(scene()), 10, 10, noise=2), -80)
    checks = wiring.signal_checks(box.services, camera, mic, QUICK)
    await checks.start()
    with box.bus.subscribe("alarm.") as alarms:
        await _run_checks(checks, lambda: MICROPHONE_SILENT in box.alarms())
        raised = await asyncio.wait_for(alarms.get(), 1)
        assert raised.topic == "alarm.raised"
        assert raised.data == {"name": MICROPHONE_SILENT, "message": "Microphone is silent: is it muted?"}
        assert checks.health().detail == "Microphone is silent: is it muted?"
        assert checks.states()["microphone-silent"] is True
        box.set_microphone_muted(True)
        checks.tick()
        assert MICROPHONE_SILENT not in box.alarms()  # deliberately muted is not "silent"
        began = time.monotonic()
        await _run_checks(checks, lambda: time.monotonic() - began > QUICK.silent_after_s * 2)
        assert MICROPHONE_SILENT not in box.alarms()
        assert checks.health().detail.startswith("microphone muted")
        box.set_microphone_muted(False)
        await _run_checks(checks, lambda: MICROPHONE_SILENT in box.alarms())
        mic.source.stop()
        mic.source = SyntheticAudioSource("room", level_dbfs=-20)
        mic.source.start()
        checks._sound = SoundFollower(mic.source)
        await _run_checks(checks, lambda: MICROPHONE_SILENT not in box.alarms())
    assert set(box.alarms()) <= {MICROPHONE_SILENT}  # a live picture raised nothing
    await checks.stop()
    assert not box.alarms()


async def test_a_black_camera_raises_black_only_and_a_picture_clears_it(
    box: Box, devices: tuple[CameraComponent, MicrophoneComponent]
) -> None:
    camera, mic = devices
    source = SteadyCamera(i420(18), 10, 10, noise=2)
    _install(camera, mic, source, -20)
    checks = wiring.signal_checks(box.services, camera, mic, QUICK)
    await checks.start()
    await _run_checks(checks, lambda: PICTURE_BLACK in box.alarms())
    assert box.alarms() == {PICTURE_BLACK: "The picture is black: is the lens cap on?"}
    registry = make_registry(box)
    text = render(registry).decode()
    assert 'classbox_signal{check="picture-black"} 1.0' in text
    assert 'classbox_signal{check="picture-frozen"} 0.0' in text
    source.picture = i420(scene())
    await _run_checks(checks, lambda: PICTURE_BLACK not in box.alarms())
    assert not box.alarms()
    assert 'classbox_signal{check="picture-black"} 0.0' in render(registry).decode()
    await checks.stop()


async def test_a_frozen_picture_and_a_no_signal_card(
    box: Box, devices: tuple[CameraComponent, MicrophoneComponent]
) -> None:
    camera, mic = devices
    source = SteadyCamera(i420(scene()), 10, 10)  # the same frame, again and again
    _install(camera, mic, source, -20)
    checks = wiring.signal_checks(box.services, camera, mic, QUICK)
    await checks.start()
    await _run_checks(checks, lambda: PICTURE_FROZEN in box.alarms())
    assert box.alarms() == {PICTURE_FROZEN: "The picture is frozen"}
    source.picture = i420(41, u=240, v=110)
    await _run_checks(checks, lambda: NO_SIGNAL in box.alarms() and PICTURE_FROZEN not in box.alarms())
    assert box.alarms() == {NO_SIGNAL: "No picture from the camera: check the HDMI cable"}
    await checks.stop()


async def test_a_slow_camera_raises_low_fps_with_its_numbers(
    box: Box, devices: tuple[CameraComponent, MicrophoneComponent]
) -> None:
    camera, mic = devices
    source = SteadyCamera(i420(scene()), fps=30, rate=5)
    _install(camera, mic, source, -20)
    checks = wiring.signal_checks(box.services, camera, mic, RATE_ONLY)
    await checks.start()
    with box.bus.subscribe("alarm.raised") as alarms:
        await _run_checks(checks, lambda: LOW_FPS in box.alarms())
        event = await asyncio.wait_for(alarms.get(), 1)
    assert event.data["msgid"] == MESSAGES[LOW_FPS]
    assert event.data["params"]["wanted"] == 30
    assert event.data["params"]["fps"] < 15
    assert box.alarms()[LOW_FPS] == MESSAGES[LOW_FPS] % event.data["params"]
    source.rate = 30
    await _run_checks(checks, lambda: LOW_FPS not in box.alarms(), within=15)
    await checks.stop()


# -- mute -----------------------------------------------------------------------------------------


def _decoded_peaks(packets: list[EncodedPacket]) -> list[int]:
    codec = av.CodecContext.create("libopus", "r")
    peaks = []
    for packet in packets:
        for frame in codec.decode(av.Packet(packet.data)):
            peaks.append(int(np.abs(frame.to_ndarray()).max()))
    return peaks


async def test_a_muted_encoder_sends_silence_at_the_same_cadence() -> None:
    source = SyntheticAudioSource("room", level_dbfs=-20)
    packets: list[EncodedPacket] = []
    muted = False
    encoder = AudioEncoder(lambda: source, packets.append, time.monotonic(), muted=lambda: muted)
    source.start()
    await asyncio.to_thread(encoder.start)
    try:
        for wanted, mute in ((50, True), (100, False), (150, False)):
            deadline = time.monotonic() + 10
            while len(packets) < wanted:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            muted = mute
    finally:
        await asyncio.to_thread(encoder.stop)
        source.stop()
    peaks = _decoded_peaks(packets)
    assert max(peaks[5:45]) > 2000  # the tone
    quiet = peaks[60:95]  # muted (past the frames already in the encoder when the mute came)
    assert max(quiet) < 50
    assert max(peaks[-40:]) > 2000  # the tone again
    # Where the mute began and ended the packets go on 20 ms after 20 ms (a loaded machine may stall elsewhere).
    muted_from = next(i for i in range(45, len(peaks)) if peaks[i] < 50)
    muted_to = next(i for i in range(muted_from, len(peaks)) if peaks[i] > 2000)
    for switch in (muted_from, muted_to):
        around = packets[switch - 3 : switch + 4]
        assert {b.pts - a.pts for a, b in zip(around, around[1:], strict=False)} == {FRAME_SAMPLES}


async def test_the_microphone_api_needs_the_teacher_and_mutes(box: Box) -> None:
    app = await asyncio.to_thread(create_app, box)  # its first build imports aiortc (slow)
    outsider = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=outsider, base_url="http://box") as client:
        assert (await client.get("/api/microphone")).status_code == 401
        assert (await client.post("/api/microphone", json={"muted": True})).status_code == 401
    assert not box.microphone_muted
    panel = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    with box.bus.subscribe("microphone.") as events:
        async with httpx.AsyncClient(transport=panel, base_url="http://box") as client:
            for bad in ({"muted": "maybe"}, {"muted": True, "also": 1}, {}):
                assert (await client.post("/api/microphone", json=bad)).status_code == 422
            assert not box.microphone_muted
            answer = await client.post("/api/microphone", json={"muted": True})
            assert answer.status_code == 200
            assert answer.json() == {"muted": True, "level_db": None}  # no microphone component runs here
            assert (await client.get("/api/microphone")).json()["muted"] is True
            text = (await client.get("/metrics")).text
            assert "classbox_microphone_muted 1.0" in text
        event = await asyncio.wait_for(events.get(), 1)
    assert (event.topic, event.data) == ("microphone.muted", {"muted": True})
    assert box.microphone_muted


async def test_stopping_a_lesson_unmutes(box: Box) -> None:
    await box.start_lesson("maths", "panel")
    box.set_microphone_muted(True)
    await box.stop_lesson("panel")
    assert not box.microphone_muted


# -- through OpenCV: what H.264 does to a frozen picture and a "no signal" card --------------------


def _clip(path: Path) -> Path:
    """4 s of one testsrc2 frame repeated, 4 s of a blue card with a white caption, 4 s of moving testsrc2."""
    frozen = f"testsrc2=s={W}x{H}:r=10:d=0.1,loop=loop=39:size=1,setpts=N/10/TB"
    card = f"color=c=0x2020c0:s={W}x{H}:r=10:d=4,drawbox=x=140:y=110:w=40:h=20:color=white:t=fill"
    moving = f"testsrc2=s={W}x{H}:r=10:d=4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", frozen, "-f", "lavfi", "-i", card,
         "-f", "lavfi", "-i", moving, "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.slow
async def test_a_file_camera_frozen_then_no_signal_then_moving(box: Box, tmp_path: Path) -> None:
    path = await asyncio.to_thread(_clip, tmp_path / "clip.mp4")
    config = CameraConfig(source="opencv", device=str(path), width=W, height=H, fps=10)
    camera = CameraComponent(box.bus, config, loss_timeout_s=5.0)
    checks = wiring.signal_checks(box.services, camera, None, QUICK)
    seen: list[str] = []
    camera.source.start()
    try:
        await checks.start()

        def sequence() -> bool:
            names = [name for name in (PICTURE_FROZEN, NO_SIGNAL) if name in box.alarms()]
            if names and (not seen or seen[-1] != "+".join(names)):
                seen.append("+".join(names))
            return bool(seen) and not names and NO_SIGNAL in seen

        await _run_checks(checks, sequence, within=30)
    finally:
        await asyncio.to_thread(camera.source.stop)
        await checks.stop()
    assert seen == [PICTURE_FROZEN, NO_SIGNAL], seen  # never black, never both at once


# -- the recording's event log and the level meter -------------------------------------------------


@pytest.mark.slow
async def test_the_recording_logs_alarms_from_before_and_during_it_and_the_mutes(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    config.recording.enabled, config.recording.segment_seconds = True, 1.0
    config.stream.keyframe_interval_s = 1.0
    async with live_box(config) as live:
        box = live.box
        box.services.alarms.raise_alarm("test.before", "Raised before the lesson")
        with box.bus.subscribe("recording.") as recording:
            lesson = await live.start_lesson("Signals")
            box.set_microphone_muted(True)
            box.services.alarms.raise_alarm("test.during", "Raised during the lesson")
            box.services.alarms.clear_alarm("test.during")
            box.set_microphone_muted(False)
            while (await asyncio.wait_for(recording.get(), 20)).topic != "recording.segment":
                pass
            await box.stop_lesson("panel")
            while (await asyncio.wait_for(recording.get(), 30)).topic != "recording.finished":
                pass
        ink = Path(box.recording_file(lesson.id, "ink")[0])
        lines = [json.loads(line) for line in (await asyncio.to_thread(ink.read_text)).splitlines()]
    logged = [(line["topic"], line["data"].get("name", line["data"].get("muted"))) for line in lines]
    assert logged.index(("alarm.raised", "test.before")) == logged.index(("recording.started", None)) + 1
    before = next(line for line in lines if line["data"].get("name") == "test.before")
    assert before["data"] == {"name": "test.before", "message": "Raised before the lesson", "before_start": True}
    order = [
        ("microphone.muted", True),
        ("alarm.raised", "test.during"),
        ("alarm.cleared", "test.during"),
        ("microphone.muted", False),
    ]
    assert [item for item in logged if item in order] == order
    during = next(line for line in lines if line["data"].get("name") == "test.during")
    assert during["t"] >= 0  # seconds into the recording
    assert during["at"] >= before["at"]  # and its wall-clock label


async def test_the_level_meter_says_dbfs_and_mute_ten_times_a_second(box: Box) -> None:
    mic = MicrophoneComponent(box.bus, box.services.mute, box.config.microphones[0])
    with box.bus.subscribe("audio.level") as levels:
        await mic.start()
        try:
            events = [await asyncio.wait_for(levels.get(), 2) for _ in range(11)]
            box.set_microphone_muted(True)
            muted = await asyncio.wait_for(levels.get(), 2)
        finally:
            await mic.stop()
    assert set(events[0].data) == {"mic", "rms_dbfs", "peak_dbfs", "muted"}
    assert events[-1].data["muted"] is False
    assert -24 < events[-1].data["rms_dbfs"] < -22  # the synthetic tone, in dBFS
    assert muted.data["muted"] is True
    gaps = sorted(b.mono - a.mono for a, b in zip(events, events[1:], strict=False))
    assert 0.08 < gaps[len(gaps) // 2] < 0.15  # 10 Hz (the median: a busy machine may stall one)
