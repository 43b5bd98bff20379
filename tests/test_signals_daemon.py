"""Signal checks and mute in the real daemon: an ALSA file microphone fed zeros, OpenCV file cameras, PyAV decoding."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from edge.core.config import BoxConfig, CameraConfig, MicrophoneConfig, VideoLayerConfig, dump_config
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import DaemonProcess, http_json, wait_for

W, H, FPS = 320, 240, 10
SECOND = 48000 * 2  # bytes of 48 kHz mono S16_LE


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def clip(path: Path, *sources: str) -> Path:
    """An H.264 file of the lavfi `sources` one after another (320x240, 10 fps, a keyframe a second)."""
    inputs = [arg for source in sources for arg in ("-f", "lavfi", "-i", source)]
    joined = "".join(f"[{i}]" for i in range(len(sources))) + f"concat=n={len(sources)}:v=1:a=0"
    ffmpeg(*inputs, "-filter_complex", joined, "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS),
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def alsa_home(home: Path, infile: Path) -> Path:
    """A HOME whose .asoundrc has `classmic`: a capture device that reads `infile` (raw S16_LE 48 kHz mono)."""
    home.mkdir()
    (home / ".asoundrc").write_text(f"""
pcm.classmic {{
  type file
  slave.pcm null
  file "/dev/null"
  infile "{infile}"
  format "raw"
  hint {{ show on description "Test file microphone" }}
}}
pcm.null {{ type null }}
""")
    return home


def box_config(path: Path, camera: CameraConfig, microphone: MicrophoneConfig) -> Path:
    """A small box (the machine is shared) with these devices."""
    config = BoxConfig(cameras=[camera], microphones=[microphone])
    config.stream.high = VideoLayerConfig(width=W, height=H, fps=FPS, kbps=300)
    config.stream.low = VideoLayerConfig(width=256, height=192, fps=FPS, kbps=150)
    config.stream.lowest.enabled = False
    config.recording.segment_seconds = 2
    config.stream.keyframe_interval_s = 1
    config.discovery.enabled = False
    path.write_text(dump_config(config))
    return path


def alarms(daemon: DaemonProcess) -> dict[str, str]:
    health = daemon.health()
    return dict(health["alarms"]) if health else {}


def signal_metrics(daemon: DaemonProcess) -> dict[str, float]:
    text = urllib.request.urlopen(daemon.url + "/metrics", timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("classbox_signal{"):
            check = line.split('check="')[1].split('"')[0]
            found[check] = float(line.rsplit(" ", 1)[1])
    return found


def raised(daemon: DaemonProcess, name: str) -> bool:
    return name in alarms(daemon)


def ink_log(daemon: DaemonProcess, lesson_id: str) -> list[dict[str, Any]]:
    def ready() -> dict[str, Any] | None:
        status, body = http_json(daemon.url + "/api/recordings")
        assert status == 200, body
        found = [r for r in body["recordings"] if r["lesson_id"] == lesson_id and r["state"] == "ready"]
        return found[0] if found else None

    recording = wait_for(ready, 60, 0.25, "the recording ready")
    with urllib.request.urlopen(f"{daemon.url}/api/recordings/{recording['id']}/ink", timeout=10) as response:
        return [json.loads(line) for line in response.read().decode().splitlines()]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(150)
def test_a_silent_microphone_and_a_black_camera_are_told_logged_and_cleared(tmp_path: Path) -> None:
    mic_file = tmp_path / "mic.raw"
    mic_file.write_bytes(bytes(SECOND * 120))  # two minutes of digital silence through the real PyAudio path
    home = alsa_home(tmp_path / "home", mic_file)
    video = clip(tmp_path / "black.mp4", f"color=black:s={W}x{H}:r={FPS}:d=14", f"testsrc2=s={W}x{H}:r={FPS}:d=10")
    config = box_config(
        tmp_path / "box.toml",
        CameraConfig(name="teacher", source="opencv", device=str(video), width=W, height=H, fps=FPS),
        MicrophoneConfig(name="desk", source="pyaudio", device="classmic"),
    )
    with DaemonProcess(tmp_path / "state", "--config", str(config), env={"HOME": str(home)}) as daemon:
        daemon.wait_healthy(30)
        answered = time.monotonic()
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Signals"})
        assert status == 201, body
        lesson_id = body["id"]

        # Within 15 s of the daemon answering, the teacher's panel says both in plain words (Chromium, on the
        # box's own address: a panel address); health and /metrics agree.
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                panel = browser.new_page(viewport={"width": 1280, "height": 800})
                panel.goto(daemon.url + "/panel")
                within_ms = (15 - (time.monotonic() - answered)) * 1000
                for words in ("The picture is black: is the lens cap on?", "Microphone is silent: is it muted?"):
                    panel.wait_for_selector(f"#status :text('{words}')", timeout=max(within_ms, 1000))
            finally:
                browser.close()
        within = 15 - (time.monotonic() - answered)
        wait_for(lambda: raised(daemon, "signal.picture-black"), max(within, 0.5), 0.2, "the black picture told")
        assert alarms(daemon)["signal.picture-black"] == "The picture is black: is the lens cap on?"
        assert signal_metrics(daemon)["picture-black"] == 1.0
        wait_for(lambda: raised(daemon, "signal.microphone-silent"), within, 0.2, "the silent microphone told")
        health = daemon.health()
        assert health is not None
        assert health["alarms"]["signal.microphone-silent"] == "Microphone is silent: is it muted?"
        assert "Microphone is silent: is it muted?" in health["components"]["signals"]["detail"]
        assert health["components"]["signals"]["checks"]["microphone-silent"] is True
        metrics = signal_metrics(daemon)
        assert metrics["microphone-silent"] == 1.0
        assert metrics["picture-frozen"] == metrics["no-signal"] == metrics["low-fps"] == 0.0

        # Fixing it clears it: sound reaches the microphone, the camera's picture comes back (the clip goes on).
        tone = tmp_path / "tone.raw"
        subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", "-e", "signed", str(tone),
                        "synth", "120", "sine", "440", "vol", "-20dB"], check=True)  # fmt: skip
        with mic_file.open("r+b") as device:  # the same file, rewritten under the reader's position
            device.write(tone.read_bytes())
        wait_for(lambda: not raised(daemon, "signal.microphone-silent"), 15, 0.2, "the microphone heard again")
        wait_for(lambda: signal_metrics(daemon)["microphone-silent"] == 0.0, 5, 0.2, "/metrics agreeing")
        wait_for(lambda: not raised(daemon, "signal.picture-black"), 20, 0.2, "the picture back (the clip goes on)")
        status, body = http_json(daemon.url + "/api/lessons/current/stop", "POST")
        assert status == 200, body
        events = ink_log(daemon, lesson_id)
        assert daemon.terminate() == 0

    def logged(topic: str, name: str) -> list[dict[str, Any]]:
        return [e for e in events if e["topic"] == topic and e["data"].get("name") == name]

    for name in ("signal.picture-black", "signal.microphone-silent"):
        assert logged("alarm.raised", name), [e["topic"] for e in events]
        assert logged("alarm.cleared", name)
        first_raised, first_cleared = logged("alarm.raised", name)[0], logged("alarm.cleared", name)[0]
        assert 0 <= first_raised["t"] < first_cleared["t"]  # seconds into the recording
        assert first_raised["at"] < first_cleared["at"]  # and the wall-clock time it happened
    silent = logged("alarm.raised", "signal.microphone-silent")[0]
    assert silent["data"]["message"] == "Microphone is silent: is it muted?"


def _audio_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """(seconds, samples of full scale 1) of every decoded audio frame of a recording."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            assert frame.pts is not None
            samples = frame.to_ndarray().astype(np.float64).ravel()
            if frame.format.name.startswith("s16"):
                samples /= 32768
            frames.append((float(frame.pts * stream.time_base), samples))
    return frames


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_mute_silences_viewers_and_the_recording_without_stalling_the_audio(tmp_path: Path) -> None:
    config = box_config(
        tmp_path / "box.toml",
        CameraConfig(name="teacher", width=W, height=H, fps=FPS),
        MicrophoneConfig(name="desk", tone_hz=440),  # the synthetic tone: -20 dBFS peak
    )
    with DaemonProcess(tmp_path / "state", "--config", str(config)) as daemon:
        daemon.wait_healthy(30)
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Mute"})
        assert status == 201, body
        lesson_id = body["id"]

        def audio_packets() -> int:
            health = daemon.health()
            return int(health["components"]["media"].get("audio_packets", 0)) if health else 0

        wait_for(lambda: audio_packets() >= 150, 30, 0.1, "3 s of sound")
        status, body = http_json(daemon.url + "/api/microphone", "POST", {"muted": True})
        assert (status, body["muted"]) == (200, True), body
        at_mute = audio_packets()
        wait_for(lambda: audio_packets() >= at_mute + 200, 30, 0.1, "4 s muted")
        state = http_json(daemon.url + "/api/microphone")[1]
        assert state["muted"] is True
        assert -26 < state["level_db"] < -20  # the microphone itself still hears the tone (RMS dBFS)
        assert not raised(daemon, "signal.microphone-silent")
        status, body = http_json(daemon.url + "/api/microphone", "POST", {"muted": False})
        assert (status, body["muted"]) == (200, False), body
        at_unmute = audio_packets()
        wait_for(lambda: audio_packets() >= at_unmute + 150, 30, 0.1, "3 s of sound again")
        status, body = http_json(daemon.url + "/api/lessons/current/stop", "POST")
        assert status == 200, body
        events = ink_log(daemon, lesson_id)
        status, listing = http_json(daemon.url + "/api/recordings")
        recording = next(r for r in listing["recordings"] if r["lesson_id"] == lesson_id)
        target = tmp_path / "lesson.mp4"
        with urllib.request.urlopen(daemon.url + recording["download"], timeout=30) as response:
            target.write_bytes(response.read())
        assert daemon.terminate() == 0

    mutes = [e for e in events if e["topic"] == "microphone.muted"]
    assert [e["data"]["muted"] for e in mutes] == [True, False]
    muted_from, muted_to = mutes[0]["t"], mutes[1]["t"]
    assert muted_to - muted_from > 3
    frames = _audio_frames(target)
    # One 20 ms frame after another where the mute begins and ends: muting never stalls the sound.
    for switch in (muted_from, muted_to):
        around = [f for f in frames if abs(f[0] - switch) < 0.5]
        gaps = [b[0] - a[0] - len(a[1]) / 48000 for a, b in zip(around, around[1:], strict=False)]
        assert len(gaps) > 40
        assert max(abs(g) for g in gaps) < 0.002
    inside = [np.abs(s).max() for t, s in frames if muted_from + 0.3 < t < muted_to - 0.1]
    before = [np.sqrt(np.mean(s * s)) for t, s in frames if 0.5 < t < muted_from - 0.5]
    after = [np.sqrt(np.mean(s * s)) for t, s in frames if muted_to + 0.3 < t]
    assert len(inside) > 100
    assert max(inside) < 50 / 32768  # near-zero samples while muted
    # Before (sound captured well before the mute is encoded before it, even on a busy box) and after.
    assert len(before) > 50
    assert len(after) > 50
    assert min(before) > 0.03  # the tone: RMS ~0.07 of full scale
    assert min(after) > 0.03
