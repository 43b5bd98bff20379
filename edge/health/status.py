"""The status strip in plain words: what the panel, the console and the admin page say about the box right now.

Computed once here from the alarms, the components' health and the recordings' upload state; each
line is an English message marked with `N_()` plus its values, translated by the door that shows it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.core.component import Components
from edge.core.texts import N_

# Words the sync layer uses for a fetch that never reached the other end (sync.errors.failure_reason).
OFFLINE_WORDS = ("DNS", "connection refused", "connection reset", "unreachable", "timed out")


@dataclass(frozen=True)
class StatusLine:
    """One line of the status strip: a stable key, an N_()-marked message with its values, and its level."""

    key: str
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)
    level: str = "warning"  # warning | info

    def text(self, gettext: Callable[[str], str] = str) -> str:
        """The line in words, translated by `gettext` (English when none is given)."""
        translated = gettext(self.message)
        try:
            return translated % self.values if self.values else translated
        except (KeyError, TypeError, ValueError):  # a translation that lost a placeholder: say it in English
            return self.message % self.values if self.values else self.message

    def to_json(self, gettext: Callable[[str], str] = str) -> dict[str, Any]:
        """The line as the doors send it."""
        return {"key": self.key, "level": self.level, "text": self.text(gettext)}


def device_lines(components: Components) -> list[StatusLine]:
    """A camera or microphone that is down or struggling, in words the teacher can act on."""
    lines = []
    for name, report in components.items():
        status = report.status
        if name.startswith("camera:") and status == "down":
            lines.append(StatusLine(name, N_("Camera disconnected: check the USB cable")))
        elif name.startswith("camera:") and status == "degraded":
            lines.append(StatusLine(name, N_("The camera is not delivering a steady picture")))
        elif name.startswith("mic:") and status == "down":
            lines.append(StatusLine(name, N_("Microphone disconnected: check its cable")))
    return lines


def network_lines(components: Components) -> list[StatusLine]:
    """No internet (the courseware pull could not reach anyone), a clock that is not set, refused uploads."""
    lines = []
    courseware, clock, uploads = components.courseware, components.clock, components.uploads
    if courseware and courseware.status == "degraded" and any(w in courseware.detail for w in OFFLINE_WORDS):
        lines.append(StatusLine("network", N_("No internet: lessons still work"), level="info"))
    if clock and clock.status == "degraded":
        lines.append(StatusLine("clock", N_("Clock not set: schedules and dates may be wrong"), level="info"))
    if uploads and uploads.metric("uploads_failed"):
        lines.append(StatusLine("uploads", N_("Some recordings were refused by the server: ask IT staff")))
    return lines


def cloud_lines(components: Components) -> list[StatusLine]:
    """The lesson going out to the cloud server (its trouble is an alarm, said first)."""
    uplink = components.uplink
    if uplink and uplink.metric("uplink_state") == "publishing":
        return [
            StatusLine("uplink", N_("Live to cloud: students outside this room watch through the cloud"), level="info")
        ]
    return []


def upload_lines(recordings: Iterable[Mapping[str, Any]], today: dt.date) -> list[StatusLine]:
    """Each recording on its way to the server, with how far it has got."""
    lines = []
    for recording in recordings:
        if recording.get("upload_state") != "uploading" or not recording.get("size"):
            continue
        percent = min(100, int(100 * (recording.get("uploaded_bytes") or 0) / recording["size"]))
        day = dt.datetime.fromtimestamp(recording["started_at"]).date()
        key = f"upload:{recording['id']}"
        values: dict[str, Any] = {"percent": percent}
        if day == today:
            lines.append(StatusLine(key, N_("Uploading today's lesson: %(percent)s %%"), values, "info"))
        elif day == today - dt.timedelta(days=1):
            lines.append(StatusLine(key, N_("Uploading yesterday's lesson: %(percent)s %%"), values, "info"))
        else:
            values["date"] = day.isoformat()
            lines.append(StatusLine(key, N_("Uploading the lesson of %(date)s: %(percent)s %%"), values, "info"))
    return lines


def status_lines(
    alarms: Mapping[str, str],
    components: Components,
    recordings: Iterable[Mapping[str, Any]],
    today: dt.date,
) -> list[StatusLine]:
    """Every line of the status strip, the alarms first (they say what is wrong now)."""
    lines = [StatusLine(name, message) for name, message in alarms.items()]
    lines += [*device_lines(components), *cloud_lines(components), *network_lines(components)]
    return [*lines, *upload_lines(recordings, today)]
