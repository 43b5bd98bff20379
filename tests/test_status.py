"""The status strip's lines, computed once in the service layer from alarms, component health and uploads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edge.box import Box
from edge.core.component import ComponentHealth, Components
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.core.texts import N_
from edge.health.status import StatusLine, status_lines

TODAY = dt.date(2026, 3, 10)


def started(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(9, 30)).timestamp()


def test_alarms_come_first_then_devices_network_and_uploads_in_plain_words() -> None:
    components = Components(
        {
            "camera:teacher": ComponentHealth(status="down", detail="VIDEOIO: can't open /dev/video0"),
            "mic:room": ComponentHealth(status="ok"),
            "courseware": ComponentHealth(status="degraded", detail="https://cdn.example/meta: DNS name not found"),
            "clock": ComponentHealth(status="ok"),
            "uploads": ComponentHealth(status="ok", metrics={"uploads_failed": 0}),
        }
    )
    recordings = [
        {"id": "r1", "upload_state": "uploading", "uploaded_bytes": 40, "size": 100, "started_at": started(TODAY)},
        {
            "id": "r2",
            "upload_state": "uploading",
            "uploaded_bytes": 4,
            "size": 10,
            "started_at": started(dt.date(2026, 3, 9)),
        },
        {
            "id": "r3",
            "upload_state": "uploading",
            "uploaded_bytes": 1,
            "size": 3,
            "started_at": started(dt.date(2026, 3, 1)),
        },
        {"id": "r4", "upload_state": "uploaded", "uploaded_bytes": 3, "size": 3, "started_at": started(TODAY)},
    ]
    alarms = {"signal.microphone-silent": N_("Microphone is silent: is it muted?")}
    lines = status_lines(alarms, components, recordings, TODAY)
    assert [line.text() for line in lines] == [
        "Microphone is silent: is it muted?",
        "Camera disconnected: check the USB cable",
        "No internet: lessons still work",
        "Uploading today's lesson: 40 %",
        "Uploading yesterday's lesson: 40 %",
        "Uploading the lesson of 2026-03-01: 33 %",
    ]
    assert [line.key for line in lines][:2] == ["signal.microphone-silent", "camera:teacher"]
    assert lines[0].level == "warning"
    assert lines[2].level == "info"
    assert all("dev/video0" not in line.text() for line in lines)  # a technician's words stay in /healthz


def test_a_box_that_is_fine_says_nothing_and_a_courseware_refusal_is_not_called_no_internet() -> None:
    components = Components(
        {
            "camera:teacher": ComponentHealth(status="ok"),
            "courseware": ComponentHealth(
                status="degraded", detail="1 chunk(s) or item(s) not updated; first: hash mismatch"
            ),
        }
    )
    assert status_lines({}, components, [], TODAY) == []


def test_a_line_is_translated_by_the_door_and_a_broken_translation_falls_back_to_english() -> None:
    line = StatusLine("upload:r1", N_("Uploading today's lesson: %(percent)s %%"), {"percent": 40}, "info")
    assert line.text(lambda m: "Envoi de la leçon du jour : %(percent)s %%") == "Envoi de la leçon du jour : 40 %"
    assert line.text(lambda m: "Envoi : %(pourcent)s") == "Uploading today's lesson: 40 %"
    assert line.to_json() == {"key": "upload:r1", "level": "info", "text": "Uploading today's lesson: 40 %"}


def test_the_box_gives_its_status_lines_from_its_own_alarms(tmp_path: Path) -> None:
    config = BoxConfig()
    config.box.state_dir = tmp_path
    box = Box(config, EventBus())
    box.open()
    try:
        assert box.status_lines() == []
        box.services.alarms.raise_alarm("signal.picture-black", N_("The picture is black: is the lens cap on?"))
        assert [line.text() for line in box.status_lines()] == ["The picture is black: is the lens cap on?"]
        box.services.alarms.clear_alarm("signal.picture-black")
        assert box.status_lines() == []
    finally:
        box.close()
