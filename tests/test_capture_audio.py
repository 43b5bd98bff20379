"""Audio drivers on real parts: the synthetic tone, and PyAudio through ALSA file-backed devices."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.audio import (
    FRAME_SAMPLES,
    AudioFrame,
    AudioSink,
    CapturingAudioSource,
    PyAudioSink,
    PyAudioSource,
    SyntheticAudioSink,
    SyntheticAudioSource,
    dbfs,
    list_microphones,
    list_speakers,
    open_audio_source,
    probe_audio_device,
)
from tests.helpers import wait_for

TONE_RMS_DBFS = -23.01  # a sine peaking at -20 dBFS


def _asoundrc(tone: Path, speaker_out: Path) -> str:
    return f"""
pcm.classmic {{
  type file
  slave.pcm null
  file "/dev/null"
  infile "{tone}"
  format "raw"
  hint {{ show on description "Test file microphone" }}
}}
pcm.classspeaker {{
  type file
  slave.pcm null
  file "{speaker_out}"
  format "raw"
  hint {{ show on description "Test file speaker" }}
}}
pcm.null {{ type null }}
"""


@pytest.fixture
def alsa_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose .asoundrc defines `classmic` (plays a -20 dBFS 440 Hz tone) and `classspeaker` (records to a file).

    PortAudio re-reads the ALSA config at each initialisation and the drivers initialise it per
    open, so setting HOME before `start()` is enough.
    """
    tone = tmp_path / "tone.raw"
    subprocess.run(
        ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", "-e", "signed", str(tone),
         "synth", "3", "sine", "440", "vol", "-20dB"],
        check=True,
    )  # fmt: skip
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _install_devices(home: Path) -> None:
    (home / ".asoundrc").write_text(_asoundrc(home / "tone.raw", home / "speaker.raw"))


@pytest.fixture
def running() -> Iterator[list[CapturingAudioSource | AudioSink]]:
    """Sources and sinks a test starts; all stopped at the end (the thread guard checks)."""
    started: list[CapturingAudioSource | AudioSink] = []
    yield started
    for item in started:
        item.stop()


# -- level and the ring ------------------------------------------------------------------------


def test_dbfs_of_known_signals() -> None:
    t = np.arange(4800) / 48000
    sine = np.round(0.1 * 32768 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    rms, peak = dbfs(sine)
    assert rms == pytest.approx(TONE_RMS_DBFS, abs=0.05)
    assert peak == pytest.approx(-20.0, abs=0.05)
    assert dbfs(np.zeros(960, dtype=np.int16)) == (-100.0, -100.0)


def test_synthetic_tone_frames_and_level(running: list[CapturingAudioSource | AudioSink]) -> None:
    source = SyntheticAudioSource("room", channels=2, tone_hz=440)
    running.append(source)
    source.start()
    first = source.read_after(0, timeout=5)
    assert first is not None
    assert first.pcm.shape == (FRAME_SAMPLES, 2)
    assert first.pcm.dtype == np.int16
    assert (first.sample_rate, first.channels, first.index, first.silent) == (48000, 2, 1, False)
    wait_for(lambda: source.stats().delivered >= 6, timeout=5, what="100 ms of tone")
    rms, peak = source.level()
    assert rms == pytest.approx(TONE_RMS_DBFS, abs=0.1)
    assert peak == pytest.approx(-20.0, abs=0.1)
    second = source.read_after(first.index, timeout=5)
    assert second is not None
    assert second.index == first.index + 1
    assert second.captured_at - first.captured_at == pytest.approx(0.02, abs=0.015)


def test_a_reader_that_fell_behind_resumes_at_the_oldest_kept_frame(
    running: list[CapturingAudioSource | AudioSink],
) -> None:
    source = SyntheticAudioSource("room")
    running.append(source)
    source.start()
    wait_for(lambda: source.stats().delivered > 55, timeout=10, what="more than a ring of frames")
    frame = source.read_after(0, timeout=1)
    assert frame is not None
    assert frame.index > 1
    assert source.stats().delivered - frame.index < 50
    follow = source.read_after(frame.index, timeout=1)
    assert follow is not None
    assert follow.index == frame.index + 1
    assert source.read_after(10**9, timeout=0.05) is None


# -- PyAudio through ALSA ----------------------------------------------------------------------


def test_pyaudio_microphone_measures_the_tone(alsa_home: Path, running: list[CapturingAudioSource | AudioSink]) -> None:
    _install_devices(alsa_home)
    mics = list_microphones()
    assert "classmic" in [m["name"] for m in mics]
    source = open_audio_source("room", "pyaudio", device="CLASSMIC", channels=1)
    running.append(source)
    source.start()
    wait_for(lambda: source.stats().status == "ok", timeout=10, what="tone frames")
    frame = source.latest()
    assert frame is not None
    for _ in range(10):  # silence filled while PortAudio opened may precede; the level must come from the tone
        frame = source.read_after(frame.index, timeout=1)
        assert frame is not None
        assert not frame.silent
    rms, peak = source.level()
    assert rms == pytest.approx(TONE_RMS_DBFS, abs=1.0)
    assert peak == pytest.approx(-20.0, abs=1.0)


def test_a_missing_microphone_gives_silence_and_red_health_then_recovers(
    alsa_home: Path, running: list[CapturingAudioSource | AudioSink]
) -> None:
    source = PyAudioSource("room", device="classmic", loss_timeout_s=0.3, backoff_first_s=0.1, backoff_max_s=0.2)
    running.append(source)
    source.start()  # never raises for a missing device
    wait_for(lambda: source.stats().status == "down", timeout=5, what="health down")
    stats = source.stats()
    assert "no input device matching 'classmic'" in stats.detail
    frame = source.read_after(0, timeout=1)
    assert frame is not None
    assert frame.silent
    assert source.level() == (-100.0, -100.0)
    later = frame
    for _ in range(10):
        later = source.read_after(later.index, timeout=1)
        assert later is not None
    assert later.captured_at - frame.captured_at == pytest.approx(0.2, abs=0.01), "silence keeps the media clock"
    began, delivered = time.monotonic(), source.stats().delivered
    time.sleep(0.5)
    rate = (source.stats().delivered - delivered) / (time.monotonic() - began)
    assert 10 < rate < 100, "about 50 frames a second, not a burst"
    _install_devices(alsa_home)  # the microphone is plugged in
    wait_for(lambda: source.stats().status == "ok", timeout=10, what="the microphone back")
    wait_for(lambda: source.level()[0] > -30, timeout=5, what="the tone's level")


def test_probe_reports_a_missing_microphone(alsa_home: Path) -> None:
    assert "no input device matching 'usb array'" in (probe_audio_device("usb array") or "")
    _install_devices(alsa_home)
    assert probe_audio_device("classmic") is None


def test_pyaudio_speaker_plays_frames(alsa_home: Path, running: list[CapturingAudioSource | AudioSink]) -> None:
    _install_devices(alsa_home)
    assert "classspeaker" in [s["name"] for s in list_speakers()]
    sink = PyAudioSink("question", device="classspeaker")
    running.append(sink)
    sink.start()
    wait_for(lambda: sink.stats().status == "ok", timeout=10, what="the speaker open")
    pcm = np.full((FRAME_SAMPLES, 1), 1000, dtype=np.int16)
    for index in range(1, 6):
        sink.play(AudioFrame(pcm, 48000, 1, index, time.time()))
    wait_for(lambda: sink.stats().delivered == 5, timeout=5, what="five frames played")
    sink.stop()
    written = np.frombuffer((alsa_home / "speaker.raw").read_bytes(), dtype=np.int16)
    assert np.count_nonzero(written == 1000) >= 4 * FRAME_SAMPLES


def test_synthetic_speaker_keeps_up_and_drops_the_oldest(running: list[CapturingAudioSource | AudioSink]) -> None:
    sink = SyntheticAudioSink("question")
    running.append(sink)
    pcm = np.zeros((FRAME_SAMPLES, 1), dtype=np.int16)
    for index in range(1, 16):  # before start: the queue keeps the newest 10
        sink.play(AudioFrame(pcm, 48000, 1, index, time.time()))
    assert sink.stats().dropped == 5
    sink.start()
    wait_for(lambda: sink.stats().delivered == 10, timeout=5, what="the queue played")


def test_two_microphones_at_once_one_missing(alsa_home: Path, running: list[CapturingAudioSource | AudioSink]) -> None:
    """PortAudio's global state is shared: a mic retrying every 50 ms must not disturb the one that works."""
    _install_devices(alsa_home)
    desk = PyAudioSource("desk", device="classmic")
    gone = PyAudioSource("gone", device="usb array", loss_timeout_s=0.2, backoff_first_s=0.02, backoff_max_s=0.05)
    running.extend([desk, gone])
    desk.start()
    gone.start()
    wait_for(lambda: desk.stats().status == "ok" and gone.stats().status == "down", timeout=10, what="ok and down")
    delivered = desk.stats().delivered  # half a second of the desk's frames while the missing one retries
    wait_for(lambda: desk.stats().delivered >= delivered + 25, timeout=5, what="the desk reading on")
    assert desk.stats().status == "ok"
    assert desk.level()[0] == pytest.approx(TONE_RMS_DBFS, abs=1.0)
    assert gone.stats().status == "down"
