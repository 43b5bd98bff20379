"""The daemon's exception hierarchy; doors map these to their own answers (HTTP status, console line)."""

from __future__ import annotations


class ClassboxError(Exception):
    """Base of every error the service layer raises on purpose."""


class ConfigError(ClassboxError):
    """A configuration file or value was refused; `problems` has one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class LessonError(ClassboxError):
    """A lesson operation is not allowed in the current state."""


class LessonAlreadyLive(LessonError):
    """A lesson is already live; stop it before starting another."""


class NoLiveLesson(LessonError):
    """There is no live lesson to act on."""


class NotAllowed(ClassboxError):
    """The caller lacks the credential this operation needs."""


class TooManyAttempts(NotAllowed):
    """Too many wrong credentials from this address (or on the box): locked out for a while."""


class AccountError(ClassboxError):
    """An admin account request was refused for what it asks (a bad username, a short password)."""


class SetupClosed(AccountError):
    """The box already has an admin account: the first-boot setup code is spent."""


class ViewerError(ClassboxError):
    """A student could not join the live lesson."""


class LessonNotFound(ViewerError):
    """No live lesson has this join code (wrong, not started yet, or ended)."""


class BadOffer(ViewerError):
    """The viewer's SDP offer was refused; the message says why."""


class LessonFull(ViewerError):
    """The lesson has as many viewers as the box may serve."""


class StreamUnavailable(ViewerError):
    """The box cannot take a viewer right now (the live stream is restarting, no socket or memory left)."""


class RecordingError(ClassboxError):
    """A recording operation is not possible."""


class RecordingNotFound(RecordingError):
    """No such recording, or its file is no longer on the box."""


class RecordingNotReady(RecordingError):
    """The recording is still being made or has failed."""


class DeviceNotFound(ClassboxError):
    """No configured camera or microphone has that name (or it has no picture yet)."""


class TimetableError(ClassboxError):
    """A timetable operation or source was refused; the message says why in plain words."""


class TimetableRefused(TimetableError):
    """A timetable (feed, repository file or manual lesson) was refused; the last good timetable is kept."""


class NoScheduledLesson(TimetableError):
    """The operation needs a scheduled lesson (live or next) and there is none."""


class RoomDeviceError(ClassboxError):
    """A room device (the PTZ camera, the display) is not set up, or did not do what it was asked.

    The message is a person's sentence (an `N_()` text the door translates); `reason` is the device's own words.
    """

    def __init__(self, message: str, reason: str = "", missing: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.missing = missing  # True: not configured or no such preset (nothing was sent)
