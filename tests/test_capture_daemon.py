"""Capture in the daemon: camera/mic components, health, audio.level events, config checks, /api/devices."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from drivers.camera import read_burned_clock
from edge.box import Box
from edge.cli import main
from edge.core.config import BoxConfig, CameraConfig, MicrophoneConfig, parse_config
from edge.core.errors import ConfigError
from edge.core.events import Event, EventBus, Subscription
from edge.doors.web.app import create_app
from edge.media.capture import CameraComponent, MicrophoneComponent, capture_components
from tests.capture_helpers import RtspCamera, make_clip
from tests.helpers import DaemonProcess, http_json, wait_for


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    box = Box(config, bus)
    box.open()
    yield box
    box.close()


@pytest.fixture
def alsa_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with an empty .asoundrc: PortAudio finds no microphone (only what ALSA always has)."""
    (tmp_path / ".asoundrc").write_text("pcm.null { type null }\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        await asyncio.sleep(0.05)


async def _drain(subscription: Subscription) -> list[Event]:
    events = []
    while True:
        try:
            events.append(await asyncio.wait_for(subscription.get(), 0.05))
        except TimeoutError:
            return events


# -- components --------------------------------------------------------------------------------


async def test_synthetic_devices_start_with_metrics_and_levels(box: Box) -> None:
    components = capture_components(box.config, box.bus, box.services.mute)
    assert [c.name for c in components] == ["camera:teacher", "mic:room"]
    camera, mic = components
    assert isinstance(camera, CameraComponent)
    assert isinstance(mic, MicrophoneComponent)
    with box.bus.subscribe("audio.level") as levels:
        for component in components:
            await component.start()
        try:
            runners = [asyncio.create_task(c.run(), name=f"test:{c.name}") for c in components]
            await _until(lambda: camera.health().status == "ok" and mic.health().status == "ok")
            events = [await asyncio.wait_for(levels.get(), 2) for _ in range(3)]
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
        finally:
            for component in components:
                await component.stop()
                await component.stop()  # idempotent
    assert events[0].data["mic"] == "room"
    assert events[-1].data["rms_dbfs"] == pytest.approx(-23.01, abs=0.5)
    assert events[-1].at - events[0].at == pytest.approx(0.2, abs=0.15)  # 10 Hz
    assert {"fps", "dropped", "last_frame_age_s"} <= set(camera.health().metrics)
    assert {"rms_dbfs", "peak_dbfs", "fps"} <= set(mic.health().metrics)
    assert camera.source.latest() is not None


async def test_several_cameras_each_named_with_its_own_source(box: Box, tmp_path: Path) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path)
    box.config.cameras = [
        CameraConfig(name="teacher", width=320, height=240, fps=10),
        CameraConfig(name="board", source="opencv", device=str(clip), width=320, height=240, fps=15),
    ]
    box.config.microphones = []
    cameras = capture_components(box.config, box.bus, box.services.mute)
    assert [c.name for c in cameras] == ["camera:teacher", "camera:board"]
    for camera in cameras:
        await camera.start()
    try:
        sources = [c.source for c in cameras if isinstance(c, CameraComponent)]
        await _until(lambda: all((f := s.latest()) is not None and not f.slate for s in sources), within=10)
        assert sources[0] is not sources[1]
        assert read_burned_clock(sources[0].latest().yuv) is not None  # type: ignore[union-attr]  # the pattern
        assert read_burned_clock(sources[1].latest().yuv) is None  # type: ignore[union-attr]  # the clip
    finally:
        for camera in cameras:
            await camera.stop()


@pytest.mark.slow
async def test_camera_health_red_on_the_slate_and_green_when_frames_return(box: Box, tmp_path: Path) -> None:
    rtsp = RtspCamera(await asyncio.to_thread(make_clip, tmp_path))
    await asyncio.to_thread(rtsp.start)
    config = CameraConfig(name="ip", source="opencv", device=rtsp.url, width=320, height=240, fps=15)
    camera = CameraComponent(box.bus, config, loss_timeout_s=0.5, backoff_first_s=0.1, backoff_max_s=0.3)
    try:
        with box.bus.subscribe("device.status") as changes:
            await camera.start()
            await _until(lambda: (camera.refresh(), camera.health().status == "ok")[1], within=20)
            await asyncio.to_thread(rtsp.kill)
            await _until(lambda: (camera.refresh(), camera.health().status == "down")[1])
            assert "camera offline" in camera.health().detail
            await _until(lambda: (f := camera.source.latest()) is not None and f.slate, within=2)
            await asyncio.to_thread(rtsp.start)
            await _until(lambda: (camera.refresh(), camera.health().status == "ok")[1], within=20)
            seen = [event.data["status"] for event in await _drain(changes)]
    finally:
        await camera.stop()
        await asyncio.to_thread(rtsp.kill)
    assert "down" in seen
    assert seen[-1] == "ok"


async def test_a_missing_microphone_is_down_not_fatal(box: Box, alsa_home: Path) -> None:
    config = MicrophoneConfig(name="desk", source="pyaudio", device="no such mic")
    mic = MicrophoneComponent(box.bus, box.services.mute, config, loss_timeout_s=0.2, backoff_first_s=0.1)
    await mic.start()  # returns at once: PortAudio is opened in the driver's thread
    try:
        await _until(lambda: (mic.refresh(), mic.health().status == "down")[1], within=5)
        assert "no input device matching 'no such mic'" in mic.health().detail
        assert mic.health().metrics["rms_dbfs"] == -100.0
    finally:
        await mic.stop()


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("camera", "problem"),
    [
        ({"source": "opencv", "device": "rtsp:/x"}, "cameras.0.device: 'rtsp:/x' is not allowed: the URL needs a host"),
        ({"source": "opencv"}, "cameras.0.device: '' is not allowed: an OpenCV camera needs a device"),
        ({"source": "opencv", "device": "gopher://cam/1"}, "cameras.0.device: 'gopher://cam/1' is not allowed"),
        ({"source": "opencv", "device": "99"}, "cameras.0.device: '99' is not allowed: a V4L2 index is 0 to 63"),
        ({"width": 1281}, "cameras.0.width: 1281 is not allowed"),
    ],
)
def test_malformed_camera_specs_are_refused_at_load(camera: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"cameras": [camera]})
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_a_synthetic_camera_needs_no_device() -> None:
    config = parse_config({"cameras": [{"name": "board", "source": "synthetic"}]})
    assert config.cameras[0].device == ""


def test_config_check_names_devices_that_do_not_exist(
    tmp_path: Path, alsa_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "board.mp4"
    clip.write_bytes(b"")
    path = tmp_path / "box.toml"
    path.write_text(
        '[[cameras]]\nname = "teacher"\nsource = "opencv"\ndevice = "7"\n'
        f'[[cameras]]\nname = "board"\nsource = "opencv"\ndevice = "{clip}"\n'
        '[[microphones]]\nname = "room"\nsource = "pyaudio"\ndevice = "USB array"\n'
    )
    assert main(["config", "check", str(path)]) != 0
    err = capsys.readouterr().err
    assert "cameras.0.device (teacher): no camera at index 7 (/dev/video7 does not exist)" in err
    assert "cameras.1" not in err
    assert "microphones.0.device (room): no input device matching 'USB array'" in err


def test_config_check_passes_a_synthetic_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "box.toml"
    path.write_text('[[cameras]]\nname = "teacher"\n[[microphones]]\nname = "room"\n')
    assert main(["config", "check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


# -- the daemon --------------------------------------------------------------------------------


@pytest.fixture
def missing_mic_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.null { type null }\n")
    config = tmp_path / "box.toml"
    config.write_text(
        '[[cameras]]\nname = "teacher"\nwidth = 320\nheight = 240\nfps = 10\n'
        '[[microphones]]\nname = "desk"\nsource = "pyaudio"\ndevice = "no such microphone"\n'
        "[discovery]\nenabled = false\n"
    )
    with DaemonProcess(tmp_path / "state", "--config", str(config), env={"HOME": str(home)}) as daemon:
        yield daemon
        daemon.terminate()


@pytest.mark.slow
def test_daemon_stays_up_with_its_microphone_missing(missing_mic_daemon: DaemonProcess) -> None:
    daemon = missing_mic_daemon
    daemon.wait_healthy()

    def mic_down() -> dict[str, object] | None:
        health = daemon.health()
        mic = health["components"].get("mic:desk") if health else None
        return mic if mic and mic["status"] == "down" else None

    mic = wait_for(mic_down, timeout=15, what="mic:desk down in /healthz")
    assert "no input device matching 'no such microphone'" in str(mic["detail"])
    assert mic["rms_dbfs"] == -100.0
    health = daemon.health()
    assert health is not None
    assert health["components"]["camera:teacher"]["status"] == "ok"
    assert health["status"] == "down"  # overall red while a device is missing
    status, devices = http_json(daemon.url + "/api/devices")
    assert status == 200
    assert devices["configured"]["microphones"][0]["device"] == "no such microphone"
    assert all("no such microphone" not in m["name"] for m in devices["microphones"])
    assert daemon.proc.poll() is None


async def test_devices_need_the_teacher(box: Box) -> None:
    """/api/devices answers the panel and refuses a non-panel address without the PIN."""
    app = await asyncio.to_thread(create_app, box)  # its first build imports aiortc (slow)
    outsider = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=outsider, base_url="http://box") as client:
        assert (await client.get("/api/devices")).status_code == 401
    panel = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=panel, base_url="http://box") as client:
        answer = await client.get("/api/devices")
    assert answer.status_code == 200
    assert set(answer.json()) == {"cameras", "microphones", "configured"}
    assert answer.json()["configured"]["cameras"][0]["name"] == "teacher"


def test_cli_config_check_subprocess_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text('[[cameras]]\nname = "teacher"\nsource = "opencv"\ndevice = "rtsp:/x"\n')
    result = subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "cameras.0.device: 'rtsp:/x' is not allowed" in result.stderr
