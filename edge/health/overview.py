"""The box's health as the doors read it: its status, each component, the live lesson, the alarms."""

from __future__ import annotations

from typing import Any

from pydantic import SkipValidation, field_serializer

from edge.core.answer import Answer
from edge.core.component import Components
from edge.lessons.lessons import Lesson


class BoxName(Answer):
    """Which box this is."""

    id: str
    name: str


class BoxHealth(Answer):
    """Overall status and each component's health, for /healthz, the console and the status line."""

    status: str
    box: BoxName
    uptime_s: float
    lesson: SkipValidation[Lesson | None]
    alarms: dict[str, str]
    components: Components

    @field_serializer("lesson")
    def _lesson(self, lesson: Lesson | None) -> dict[str, Any] | None:
        """The live lesson as the lesson API answers it."""
        return lesson.to_json() if lesson is not None else None

    def attention(self) -> list[str]:
        """The components that are not ok, by name."""
        return [name for name, report in self.components.items() if report.status != "ok"]
