"""The composition root keeps the daemon's order: components start in it and stop in reverse; lesson hooks too."""

from __future__ import annotations

from pathlib import Path

from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.daemon import standard_doors
from edge.services import Services
from edge.wiring import standard_components


def built(tmp_path: Path) -> tuple[Services, Box]:
    config = BoxConfig()
    config.box.state_dir = tmp_path
    services = Services(config, EventBus())
    return services, Box(config, services.bus, services=services, parts=standard_components(services))


def test_the_components_start_devices_first_media_then_sync_and_the_doors_last(tmp_path: Path) -> None:
    _, box = built(tmp_path)
    names = [component.name for component in [*box.parts.components, *standard_doors(box)]]
    assert names == [
        "clock", "camera:teacher", "mic:room", "media", "stream", "uplink", "recorder", "signals",
        "board-input", "room", "discovery", "courseware", "timetable", "uploads", "history", "web", "console",
    ]  # fmt: skip


def test_the_recorder_hooks_run_after_the_encoders_start_and_the_uplink_ends_before_they_stop(tmp_path: Path) -> None:
    services, _ = built(tmp_path)
    owner = lambda hook: type(hook.__self__).__name__  # noqa: E731 - the component a bound hook belongs to
    assert [owner(hook) for hook in services.lessons._on_start] == ["LessonMedia", "Recorder", "CoursewareComponent"]
    assert [owner(hook) for hook in services.lessons._on_stop] == [
        "CoursewareComponent", "Recorder", "Uplink", "ViewerHub", "LessonMedia", "Services", "Timetable",
    ]  # fmt: skip
