"""Video capture drivers on real parts: the synthetic pattern, OpenCV on a generated clip and on a real RTSP camera."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from drivers.camera import (
    CapturingVideoSource,
    OpenCVVideoSource,
    SyntheticVideoSource,
    VideoDevice,
    burn_clock,
    list_cameras,
    open_video_source,
    parse_video_device,
    probe_video_device,
    read_burned_clock,
)
from drivers.errors import DeviceSpecError
from drivers.v4l2 import describe_device, list_v4l2_devices
from tests.capture_helpers import RtspCamera, make_clip
from tests.helpers import free_port, wait_for


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def rtsp(clip: Path) -> Iterator[RtspCamera]:
    camera = RtspCamera(clip)
    camera.start()
    yield camera
    camera.kill()


@pytest.fixture
def sources() -> Iterator[list[CapturingVideoSource]]:
    """Sources a test starts; all stopped at the end (the thread guard checks)."""
    started: list[CapturingVideoSource] = []
    yield started
    for source in started:
        source.stop()


def _run(sources: list[CapturingVideoSource], source: CapturingVideoSource) -> CapturingVideoSource:
    sources.append(source)
    source.start()
    return source


# -- the synthetic pattern ---------------------------------------------------------------------


def test_synthetic_frames_carry_a_readable_clock_and_counter(sources: list[CapturingVideoSource]) -> None:
    source = _run(sources, SyntheticVideoSource("teacher", 320, 240, fps=30))
    first = source.wait_newer(0, timeout=5)
    assert first is not None
    assert not first.slate
    assert first.yuv.shape == (360, 320)
    assert first.yuv.dtype == np.uint8
    assert read_burned_clock(first.yuv) == pytest.approx(first.captured_at, abs=0.0011)
    second = source.wait_newer(first.index, timeout=5)
    assert second is not None
    assert second.index > first.index
    assert second.captured_at > first.captured_at
    assert not np.array_equal(first.yuv[40:], second.yuv[40:]), "the pattern moves"


def test_a_slow_consumer_gets_the_newest_frame_not_a_backlog(sources: list[CapturingVideoSource]) -> None:
    source = _run(sources, SyntheticVideoSource("teacher", 160, 120, fps=30))
    wait_for(lambda: (f := source.latest()) and f.index >= 6, timeout=5, what="six frames")
    newest = source.latest().index  # type: ignore[union-attr]
    frame = source.wait_newer(0, timeout=1)
    assert frame is not None
    assert frame.index >= newest  # the newest when asked, not frame 1 of a queue
    wait_for(lambda: source.latest().index >= frame.index + 5, timeout=5, what="five frames nobody read")  # type: ignore[union-attr]
    newest = source.latest().index  # type: ignore[union-attr]
    later = source.wait_newer(frame.index, timeout=1)
    assert later is not None
    assert later.index >= newest >= frame.index + 5  # the unread frames were skipped, not queued


def test_every_consumer_is_handed_the_same_frame_never_a_copy(sources: list[CapturingVideoSource]) -> None:
    source = _run(sources, SyntheticVideoSource("teacher", 160, 120, fps=30))
    assert source.wait_newer(0, timeout=5) is not None
    for _ in range(100):  # until no new frame lands between the two looks
        seen = source.latest()
        waited = source.wait_newer(seen.index - 1, timeout=1)  # type: ignore[union-attr]
        if source.latest() is seen:
            break
    else:
        pytest.fail("a new frame landed between every pair of looks")
    assert waited is seen
    assert waited.yuv is seen.yuv  # type: ignore[union-attr]


def test_wait_newer_times_out_and_returns_after_stop(sources: list[CapturingVideoSource]) -> None:
    source = _run(sources, SyntheticVideoSource("teacher", 160, 120, fps=5))
    frame = source.wait_newer(0, timeout=5)
    assert frame is not None
    assert source.wait_newer(frame.index + 1000, timeout=0.05) is None
    source.stop()
    source.stop()
    began = time.monotonic()
    assert source.wait_newer(frame.index + 1000, timeout=5) is None
    assert time.monotonic() - began < 1


def test_the_burned_clock_survives_h264() -> None:
    width, height, at = 640, 360, time.time()
    yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    yuv[:height] = np.random.default_rng(1).integers(0, 255, (height, width), dtype=np.uint8)
    burn_clock(yuv, width, at, 7)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.options = {"preset": "ultrafast", "crf": "35"}
    decoder = av.CodecContext.create("h264", "r")
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    decoded = [d for p in [*encoder.encode(frame), *encoder.encode(None)] for d in decoder.decode(p)]
    assert decoded
    assert read_burned_clock(decoded[0].to_ndarray(format="yuv420p")) == pytest.approx(at, abs=0.0011)


def test_a_picture_without_a_clock_reads_none() -> None:
    assert read_burned_clock(np.zeros((360, 320), dtype=np.uint8)) is None
    noise = np.random.default_rng(2).integers(0, 255, (360, 320), dtype=np.uint8)
    assert read_burned_clock(noise) is None
    assert read_burned_clock(np.zeros((3, 10), dtype=np.uint8)) is None


# -- OpenCV ------------------------------------------------------------------------------------


def test_opencv_plays_a_file_in_a_loop_at_the_configured_size(sources: list[CapturingVideoSource], clip: Path) -> None:
    source = _run(sources, OpenCVVideoSource("board", VideoDevice("file", str(clip)), 160, 120, fps=15))
    frame = wait_for(lambda: (f := source.latest()) and not f.slate and f.index > 18 and f, timeout=10, what="a loop")
    assert (frame.width, frame.height, frame.yuv.shape) == (160, 120, (180, 160))
    assert source.stats().status == "ok"
    assert source.stats().reconnects == 0, "looping is a rewind, not a reconnect"


def test_a_file_played_once_ends_on_the_slate(sources: list[CapturingVideoSource], clip: Path) -> None:
    device = VideoDevice("file", str(clip))
    source = _run(sources, OpenCVVideoSource("board", device, 320, 240, fps=15, loop=False, loss_timeout_s=0.3))
    wait_for(lambda: (f := source.latest()) and f.slate and f.index > 15, timeout=10, what="the slate after the end")
    stats = source.stats()
    assert stats.status == "down"
    assert "ended" in stats.detail


def test_a_missing_camera_shows_the_slate_and_is_retried(sources: list[CapturingVideoSource]) -> None:
    source = open_video_source(
        "board", "opencv", "/dev/video63", 320, 240, 15, loss_timeout_s=0.3, backoff_first_s=0.05
    )
    _run(sources, source)  # never raises for a missing device
    frame = wait_for(lambda: (f := source.latest()) and f.slate and f, timeout=5, what="a slate frame")
    assert frame.yuv.shape == (360, 320)
    assert read_burned_clock(frame.yuv) == pytest.approx(frame.captured_at, abs=0.0011)
    stats = source.stats()
    assert stats.status == "down"
    assert "/dev/video63" in stats.detail
    assert stats.last_frame_age_s is None


@pytest.mark.slow
def test_rtsp_camera_unplugged_and_plugged_back(sources: list[CapturingVideoSource], rtsp: RtspCamera) -> None:
    source = open_video_source("ip", "opencv", rtsp.url, 320, 240, 15, backoff_first_s=0.2, backoff_max_s=0.5)
    _run(sources, source)
    wait_for(lambda: source.stats().status == "ok", timeout=20, what="frames from the RTSP camera")
    real = source.latest()
    assert real is not None
    assert not real.slate
    rtsp.kill()
    slate = wait_for(lambda: (f := source.latest()) and f.slate and f, timeout=10, what="the slate")
    assert source.stats().status == "down"
    last_real = source.stats().last_frame_age_s
    assert last_real is not None
    assert last_real >= 2.0
    assert slate.captured_at - real.captured_at < 2.0 + 2.0  # the real 2 s timeout, plus scheduling slack
    rtsp.start()
    back = wait_for(lambda: (f := source.latest()) and not f.slate and f, timeout=20, what="frames back")
    assert back.index > slate.index
    wait_for(lambda: source.stats().status == "ok", timeout=10, what="health back to ok")
    assert source.stats().reconnects >= 1


def test_rtsp_loss_with_a_short_timeout(sources: list[CapturingVideoSource], rtsp: RtspCamera) -> None:
    source = open_video_source("ip", "opencv", rtsp.url, 320, 240, 15, loss_timeout_s=0.5, backoff_first_s=0.1)
    _run(sources, source)
    wait_for(lambda: (f := source.latest()) and not f.slate, timeout=20, what="first RTSP frame")
    rtsp.kill()
    wait_for(lambda: source.stats().status == "down", timeout=5, what="health down")
    wait_for(lambda: (f := source.latest()) and f.slate, timeout=1, what="the slate with the red health")


def test_an_http_mjpeg_camera_and_its_loss(sources: list[CapturingVideoSource], clip: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/cam.mjpg"
    server = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-an",
         "-c:v", "mjpeg", "-q:v", "8", "-f", "mpjpeg", "-listen", "1", url],
    )  # fmt: skip
    try:
        source = open_video_source("ip", "opencv", url, 320, 240, 15, loss_timeout_s=0.5, backoff_first_s=0.1)
        _run(sources, source)
        wait_for(lambda: source.stats().status == "ok", timeout=10, what="frames over HTTP")
        server.kill()
        wait_for(lambda: source.stats().status == "down", timeout=5, what="health down")
        wait_for(lambda: (f := source.latest()) and f.slate, timeout=1, what="the slate")
    finally:
        server.kill()
        server.wait()


def test_a_restarted_source_starts_afresh(sources: list[CapturingVideoSource], clip: Path) -> None:
    device = VideoDevice("file", str(clip))
    source = _run(sources, OpenCVVideoSource("board", device, 320, 240, fps=15, loop=False, loss_timeout_s=0.3))
    wait_for(lambda: "ended" in source.stats().detail, timeout=10, what="the end of the file")
    source.stop()
    last = source.latest()
    assert last is not None
    source.start()  # the last frame before the stop is still the newest until the file plays again
    frame = wait_for(
        lambda: (f := source.latest()) and f.index > last.index and not f.slate and f, timeout=10, what="the file again"
    )
    assert frame.index > last.index


# -- device specs and enumeration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("0", "index"),
        ("12", "index"),
        ("/dev/video2", "path"),
        ("/dev/v4l/by-id/usb-cam-video-index0", "path"),
        ("rtsp://10.0.0.5:554/stream1", "url"),
        ("http://cam.local/video.mjpg", "url"),
        ("clips/lesson.mp4", "file"),
        ("/srv/clip.mkv", "file"),
    ],
)
def test_good_device_specs(spec: str, kind: str) -> None:
    assert parse_video_device(spec).kind == kind


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "needs a device"),
        ("rtsp:/x", "needs a host"),
        ("http://", "needs a host"),
        ("rtsp://cam:99999/x", "not a valid URL"),
        ("ftp://cam/x", "unsupported URL scheme"),
        ("64", "0 to 63"),
        ("cam\n1", "control characters"),
    ],
)
def test_malformed_device_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(DeviceSpecError, match=message):
        parse_video_device(spec)


def test_probe_finds_missing_devices(clip: Path) -> None:
    assert "does not exist" in (probe_video_device(parse_video_device("63")) or "")
    assert "does not exist" in (probe_video_device(parse_video_device("/dev/video63")) or "")
    assert "no such video file" in (probe_video_device(parse_video_device("/nope/clip.mp4")) or "")
    assert probe_video_device(parse_video_device(str(clip))) is None


def test_enumeration_skips_what_is_not_a_v4l2_capture_device(tmp_path: Path) -> None:
    (tmp_path / "video0").write_bytes(b"")
    assert describe_device("/dev/null") is None  # a char device that refuses VIDIOC_QUERYCAP
    assert describe_device(str(tmp_path / "missing")) is None
    assert list_v4l2_devices(str(tmp_path / "video*")) == []
    assert list_cameras() == list_v4l2_devices()
