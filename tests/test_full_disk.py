"""A full disk (a small tmpfs as the state directory): lessons still stop and start, nothing else breaks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.lessons.lessons import Lesson
from sync.errors import DiskFloorReached
from sync.publish import publish
from sync.pull import Puller
from sync.store import Store
from tests.disk_fixture import MB, fill, free_bytes, small_disk, unfill


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "state", 8) as state:
        yield state


def open_box(state: Path, reserve_mb: int) -> Box:
    config = BoxConfig()
    config.box.state_dir = state
    config.box.reserve_mb = reserve_mb
    box = Box(config, EventBus())
    box.open()
    return box


def stored_states(state: Path) -> dict[str, str]:
    """What the database file itself holds (another connection, as after a restart)."""
    with contextlib.closing(sqlite3.connect(state / "box.db")) as db:
        return dict(db.execute("SELECT title, state FROM lessons"))


async def test_stop_and_start_answer_when_sqlite_cannot_commit_and_are_written_once_there_is_room(disk: Path) -> None:
    box = open_box(disk, reserve_mb=0)  # no reserve: SQLite itself runs out of room
    stopped: list[Lesson] = []

    async def hook(lesson: Lesson) -> None:
        stopped.append(lesson)

    box.services.lessons.on_stop(hook)
    try:
        await box.start_lesson("Maths", "panel")
        fill(disk)
        ended = await box.stop_lesson("panel")
        assert ended.state == "ended"
        assert [lesson.id for lesson in stopped] == [ended.id]
        assert box.current_lesson() is None
        nxt = await box.start_lesson("History", "panel")
        assert box.current_lesson() is not None
        assert box.lesson_by_code(nxt.join_code) == nxt
        assert box.services.lessons.get(ended.id) == ended
        assert "Disk full" in box.health()["alarms"]["lesson-state"]
        assert stored_states(disk) == {"Maths": "live"}  # the disk really refused the writes

        unfill(disk)
        assert await box.services.disk.tend()
        assert stored_states(disk) == {"Maths": "ended", "History": "live"}
        assert box.health()["alarms"] == {}
    finally:
        box.close()


async def test_the_reserve_is_released_for_the_database_and_made_again_when_room_comes_back(disk: Path) -> None:
    box = open_box(disk, reserve_mb=1)
    try:
        assert box.services.headroom.held
        await box.start_lesson("Maths", "panel")
        filler = fill(disk)
        await box.stop_lesson("panel")
        assert not box.services.headroom.held  # given to the database: the stop was written at once
        assert stored_states(disk) == {"Maths": "ended"}
        assert box.health()["alarms"] == {}
        assert not await box.services.disk.tend()  # still full: the reserve is not taken back
        filler.unlink()
        assert await box.services.disk.tend()
        assert box.services.headroom.path.stat().st_size == 1024 * 1024
    finally:
        box.close()


async def test_a_courseware_pull_stops_at_the_free_space_floor_and_says_so(tmp_path: Path, disk: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    (src / "films").mkdir(parents=True)
    (src / "films" / "big.bin").write_bytes(os.urandom(6 * MB))  # more than the disk can take above the floor
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    floor = free_bytes(disk) - 3 * MB
    store = Store(disk / "courseware.db", min_free_bytes=floor)
    try:
        root = (out / "metadata" / "1.root.json").read_bytes()
        puller = Puller(store, str(out), disk / "tuf", root)
        with pytest.raises(DiskFloorReached, match="disk nearly full: courseware sync stopped"):
            await puller.pull()
        assert free_bytes(disk) >= floor  # stopped before the floor, not at a full disk
        assert 0 < store.used_bytes < 3 * MB  # it took what fit above the floor
        assert store.courses()[0]["items"][0]["state"] == "pulling"  # not served half-pulled

        store.min_free_bytes = 0  # room again (an admin lowered the floor): the same pull finishes
        await Puller(store, str(out), disk / "tuf", root).pull()
        assert store.item("films", "big.bin").size == 6 * MB
    finally:
        store.close()


async def test_a_box_booting_on_a_full_disk_opens_with_its_reserve_and_closes_out_the_cut_lesson(disk: Path) -> None:
    box = open_box(disk, reserve_mb=1)
    cut = await box.start_lesson("Maths", "panel")
    box.close()  # the power went with the lesson live
    fill(disk)
    box = open_box(disk, reserve_mb=1)
    try:
        assert not box.services.headroom.held
        assert box.current_lesson() is None
        assert stored_states(disk) == {"Maths": "interrupted"}
        assert await box.start_lesson("History", "panel") != cut
    finally:
        box.close()
