"""The board's evdev parser on recorded event streams (a pen tablet, a multitouch frame), and its replay."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from evdev import ecodes

from drivers.board import (
    BoardInput,
    Contact,
    DeviceInfo,
    EvdevParser,
    Mapping,
    ReplaySource,
    load_recording,
    open_board_input,
    synthetic_writing,
)
from drivers.errors import DeviceSpecError
from edge import wiring
from edge.board.pen import BoardInputComponent
from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from tests.helpers import wait_for

RECORDED = Path(__file__).parent / "recorded"


def contacts(name: str, mapping: Mapping | None = None) -> list[Contact]:
    recording = load_recording(RECORDED / f"{name}.bin")
    return list(EvdevParser(recording.info, mapping or Mapping()).feed_all(recording.events()))


def strokes(found: list[Contact]) -> list[tuple[str, str, str]]:
    return [(c.kind, c.contact, c.tool) for c in found if c.kind != "move"]


def test_the_pen_recording_gives_three_pen_strokes_and_one_eraser_stroke_with_pressure() -> None:
    found = contacts("board-pen")
    assert strokes(found) == [
        ("down", "p0", "pen"), ("up", "p0", "pen"), ("down", "p1", "pen"), ("up", "p1", "pen"),
        ("down", "p2", "pen"), ("up", "p2", "pen"), ("down", "p3", "eraser"), ("up", "p3", "eraser"),
    ]  # fmt: skip
    first = [c for c in found if c.contact == "p0"]
    assert len(first) == 151  # down, 149 moves (one per SYN_REPORT), up: hovering frames draw nothing
    assert first[0].x == pytest.approx(0.1, abs=1e-3)
    assert first[0].y == pytest.approx(0.3, abs=1e-3)
    assert first[0].pressure == pytest.approx(0.3, abs=2e-3)  # ABS_PRESSURE over its 0..2047 range
    assert first[-2].pressure == pytest.approx(0.7, abs=5e-3)
    assert all(0 <= c.x <= 1 and 0 <= c.y <= 1 for c in found)
    assert [c.t for c in first] == sorted(c.t for c in first)


def test_the_multitouch_recording_keeps_each_finger_in_its_own_slot_and_lifts_on_syn_dropped() -> None:
    found = contacts("board-touch")
    assert strokes(found) == [
        ("down", "t0-101", "touch"), ("down", "t1-102", "touch"), ("up", "t0-101", "touch"),
        ("up", "t1-102", "touch"),  # SYN_DROPPED: the box cannot know where it went, so it lifts
        ("down", "t2-103", "touch"), ("up", "t2-103", "touch"),
    ]  # fmt: skip
    second = [c for c in found if c.contact == "t1-102"]
    assert second[0].x == pytest.approx(0.7, abs=1e-3)
    assert second[0].y == pytest.approx(0.7, abs=1e-3)
    both = [c for c in found if c.kind == "move" and c.t == second[1].t]
    assert {c.contact for c in both} == {"t0-101", "t1-102"}  # one frame moved both fingers
    assert all(c.pressure == 0.5 for c in found)  # no pressure axis: the middle


def test_rotation_and_calibration_map_the_input_onto_the_display() -> None:
    assert Mapping(90).apply(0.25, 0.1) == pytest.approx((0.1, 0.75))
    assert Mapping(180).apply(0.25, 0.1) == pytest.approx((0.75, 0.9))
    assert Mapping(270).apply(0.25, 0.1) == pytest.approx((0.9, 0.25))
    area = Mapping(0, (0.1, 0.2, 0.9, 0.8))
    assert area.apply(0.5, 0.5) == pytest.approx((0.5, 0.5))
    assert area.apply(0.1, 0.8) == pytest.approx((0.0, 1.0))
    assert area.apply(0.0, 0.95) == (0.0, 1.0)  # outside the display's area: on its edge
    turned = contacts("board-pen", Mapping(180))
    assert turned[0].x == pytest.approx(0.9, abs=1e-3)
    assert turned[0].y == pytest.approx(0.7, abs=1e-3)


def test_bad_recordings_and_specs_are_refused_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 25)
    (tmp_path / "bad.json").write_text('{"name": "x", "axes": {"ABS_X": [0, 10]}}')
    with pytest.raises(DeviceSpecError, match="not a stream of input events"):
        load_recording(bad)
    (tmp_path / "bad.json").write_text('{"name": "x", "axes": {"KEY_A": [0, 10]}}')
    with pytest.raises(DeviceSpecError, match="unknown axis"):
        load_recording(bad)
    with pytest.raises(DeviceSpecError, match="cannot read"):
        load_recording(tmp_path / "missing.bin")
    with pytest.raises(DeviceSpecError, match="must name"):
        open_board_input("evdev", "", Mapping())
    with pytest.raises(DeviceSpecError, match="unknown board input"):
        open_board_input("wacom", "", Mapping())


def test_a_pen_device_without_a_pressure_axis_draws_at_middle_pressure() -> None:
    info = DeviceInfo("pen", {ecodes.ABS_X: (0, 100), ecodes.ABS_Y: (0, 100)})
    parser = EvdevParser(info)
    events = [(ecodes.EV_KEY, ecodes.BTN_TOOL_PEN, 1, 0.0), (ecodes.EV_ABS, ecodes.ABS_X, 50, 0.0),
              (ecodes.EV_KEY, ecodes.BTN_TOUCH, 1, 0.0), (ecodes.EV_SYN, ecodes.SYN_REPORT, 0, 0.0)]  # fmt: skip
    (down,) = list(parser.feed_all(events))
    assert (down.kind, down.x, down.y, down.pressure) == ("down", 0.5, 0.0, 0.5)


def test_the_replay_backend_plays_a_recording_in_its_own_thread() -> None:
    recording = load_recording(RECORDED / "board-touch.bin")
    board_input = BoardInput(ReplaySource(recording, loop=False, speed=20.0))
    seen: list[Contact] = []
    done = threading.Event()

    def collect(contact: Contact) -> None:
        seen.append(contact)
        if len(seen) == len(contacts("board-touch")):
            done.set()

    board_input.start(collect)
    try:
        assert done.wait(10)
    finally:
        board_input.close()
    assert strokes(seen) == strokes(contacts("board-touch"))


async def test_the_component_draws_the_synthetic_writing_on_the_board(tmp_path: Path) -> None:
    config = BoxConfig()
    config.box.state_dir = tmp_path
    config.board.source = "synthetic"
    bus = EventBus()
    box = Box(config, bus)
    component = BoardInputComponent(box.services.current_config, bus, box.services.board)
    with bus.subscribe("board.") as sub:
        await component.start()
        task = asyncio.create_task(component.run(), name="test:board-input")
        try:
            topics: list[str] = []
            while "board.stroke.end" not in topics:
                topics.append((await asyncio.wait_for(sub.get(), 10)).topic)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await component.stop()
    assert topics[0] == "board.stroke.begin"
    assert topics.count("board.stroke.points") >= 5  # 1.5 s of writing leaves in pieces
    (stroke,) = box.board_state()["strokes"]
    assert stroke["done"]
    assert 20 < len(stroke["points"]) < 150  # simplified from 150 samples
    assert wait_for(lambda: component.health().status == "ok", 1)


def test_synthetic_writing_is_a_minute_of_strokes_and_erasing() -> None:
    recording = synthetic_writing(60)
    found = list(EvdevParser(recording.info).feed_all(recording.events()))
    downs = [c for c in found if c.kind == "down"]
    assert 25 <= len(downs) <= 40
    assert {c.tool for c in downs} == {"pen", "eraser"}


async def test_a_finished_recordings_board_is_exported_and_queued_for_upload_beside_it(tmp_path: Path) -> None:
    import json

    import pypdfium2  # type: ignore[import-untyped]

    from edge.recording.catalogue import Catalogue
    from sync.push import file_sha256

    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    config.upload.tus_url = "http://127.0.0.1:9/files"  # never reached: the outbox is not run here
    bus = EventBus()
    box = Box(config, bus)
    await asyncio.to_thread(box.open)  # SQLite set-up: off the loop on a busy machine
    uploads = wiring.uploads(box.services)
    try:
        folder = tmp_path / "recording"
        folder.mkdir()
        with bus.subscribe("board.") as sub:
            box.board_ink([{"op": "begin", "id": "s1", "points": [[0.1, 0.1, 0, 0.5], [0.4, 0.3, 0.1, 0.5]]}])
            box.board_ink([{"op": "end", "id": "s1", "points": [[0.8, 0.1, 0.2, 0.5]]}])
            lines = [{"t": 1.0, "topic": e.topic, "data": e.data} for e in [sub._queue.get_nowait() for _ in range(3)]]
        ink = folder / "ink.jsonl"
        ink.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"torn')
        video = folder / "lesson.mp4"
        video.write_bytes(b"\0" * 1000)
        catalogue = Catalogue(box.services.database())
        catalogue.begin("r1", "l1", "Fractions", 0.0, folder)
        recording = catalogue.update(
            "r1", state="ready", path=str(video), sha256=file_sha256(video), ink_path=str(ink), ink_sha256="x"
        )
        await uploads.start()
        await uploads._export_board(recording)
        uploads.queue(recording)
        assert uploads.outbox is not None
        assert {item.kind for item in uploads.outbox.items("r1")} == {"recording", "ink", "board"}
        pdf = pypdfium2.PdfDocument((folder / "board.pdf").read_bytes())
        try:
            assert len(pdf) == 1
            assert [o.type for o in pdf[0].get_objects()] == [pypdfium2.raw.FPDF_PAGEOBJ_PATH]
        finally:
            pdf.close()
    finally:
        await uploads.stop()
        await asyncio.to_thread(box.close)


@pytest.mark.slow
def test_classbox_demo_has_a_board_that_writes_by_itself(tmp_path: Path) -> None:
    from tests.helpers import DaemonProcess, http_json

    with DaemonProcess(tmp_path / "state", "--board", "synthetic") as daemon:
        health = daemon.wait_healthy()
        assert "board-input" in health["components"]

        def written() -> dict[str, object] | None:
            status, body = http_json(daemon.url + "/api/board")  # loopback: the panel's address, the teacher
            done = status == 200 and any(s["done"] for s in body["strokes"])
            return body if done else None

        board = wait_for(written, 20, 0.2, "the demo's pen to finish a stroke")
        assert board["seq"] > 0
        assert daemon.health()["components"]["board-input"]["status"] == "ok"  # type: ignore[index]
        assert daemon.terminate() == 0
