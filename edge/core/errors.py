"""The daemon's exception hierarchy and what each error means at a door (HTTP status, message id, Retry-After).

Every `ClassboxError` subclass declares its `status`, its `code` (a stable snake_case message id) and,
when asking again later helps, `retry_after` seconds. `sync` and `drivers` cannot import `edge`, so
their errors get the same meaning from `FOREIGN`, the one table for classes that are not ours.
`door_meaning` reads either, and lets a door say that one of its routes answers a class otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from drivers.errors import DeviceEnded, DeviceSpecError, DeviceUnavailable
from sync.errors import BudgetExhausted, FetchError, NotInStore, QuotaExceeded, StoreClosed, TrustError


@dataclass(frozen=True)
class Door:
    """How a door answers a class of errors: HTTP status, message id, seconds before asking again (or None)."""

    status: int
    code: str = ""  # "" in a door's override: keep the class's own id
    retry_after: int | None = None


@dataclass(frozen=True)
class DoorError:
    """One error as a door answers it: its meaning, the message a person reads, and extra answer fields."""

    status: int
    code: str
    message: str
    retry_after: int | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


class ClassboxError(Exception):
    """Base of every error the service layer raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "classbox_error"
    retry_after: ClassVar[int | None] = None

    def door_error(self) -> DoorError:
        """What this error says at a door (a subclass may refine it from the instance)."""
        return DoorError(self.status, self.code, str(self), self.retry_after)


class ConfigError(ClassboxError):
    """A configuration file or value was refused; `problems` has one line per problem."""

    status = 409
    code = "config_refused"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class LessonError(ClassboxError):
    """A lesson operation is not allowed in the current state."""

    status = 409
    code = "lesson_not_allowed"


class LessonAlreadyLive(LessonError):
    """A lesson is already live; stop it before starting another."""

    status = 409
    code = "lesson_already_live"


class NoLiveLesson(LessonError):
    """There is no live lesson to act on."""

    status = 409
    code = "no_live_lesson"


class NotAllowed(ClassboxError):
    """The caller lacks the credential this operation needs."""

    status = 403
    code = "not_allowed"


class TooManyAttempts(NotAllowed):
    """Too many wrong credentials from this address (or on the box): locked out for a while."""

    status = 429
    code = "too_many_attempts"


class AccountError(ClassboxError):
    """An admin account request was refused for what it asks (a bad username, a short password)."""

    status = 400
    code = "account_refused"


class SetupClosed(AccountError):
    """The box already has an admin account: the first-boot setup code is spent."""

    status = 409
    code = "setup_closed"


class ViewerError(ClassboxError):
    """A student could not join the live lesson."""

    status = 404
    code = "viewer_gone"


class LessonNotFound(ViewerError):
    """No live lesson has this join code (wrong, not started yet, or ended)."""

    status = 404
    code = "lesson_not_found"


class BadOffer(ViewerError):
    """The viewer's SDP offer was refused; the message says why."""

    status = 400
    code = "bad_offer"


class LessonFull(ViewerError):
    """The lesson has as many viewers as the box may serve."""

    status = 503
    code = "lesson_full"
    retry_after = 30


class StreamUnavailable(ViewerError):
    """The box cannot take a viewer right now (the live stream is restarting, no socket or memory left)."""

    status = 503
    code = "stream_unavailable"
    retry_after = 30


class RecordingError(ClassboxError):
    """A recording operation is not possible."""

    status = 409
    code = "recording_not_possible"


class RecordingNotFound(RecordingError):
    """No such recording, or its file is no longer on the box."""

    status = 404
    code = "recording_not_found"


class RecordingNotReady(RecordingError):
    """The recording is still being made or has failed."""

    status = 409
    code = "recording_not_ready"


class DeviceNotFound(ClassboxError):
    """No configured camera or microphone has that name (or it has no picture yet)."""

    status = 404
    code = "device_not_found"


class TimetableError(ClassboxError):
    """A timetable operation or source was refused; the message says why in plain words."""

    status = 422
    code = "timetable_error"


class TimetableRefused(TimetableError):
    """A timetable (feed, repository file or manual lesson) was refused; the last good timetable is kept."""

    status = 422
    code = "timetable_refused"


class NoScheduledLesson(TimetableError):
    """The operation needs a scheduled lesson (live or next) and there is none."""

    status = 409
    code = "no_scheduled_lesson"


class RoomDeviceError(ClassboxError):
    """A room device (the PTZ camera, the display) is not set up, or did not do what it was asked.

    The message is a person's sentence (an `N_()` text the door translates); `reason` is the device's own words.
    """

    status = 503
    code = "room_device_failed"

    def __init__(self, message: str, reason: str = "", missing: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.missing = missing  # True: not configured or no such preset (nothing was sent)

    def door_error(self) -> DoorError:
        """503 with the device's own words as `reason`; 404 when the device or preset is not set up."""
        status, code = (404, "room_device_missing") if self.missing else (self.status, self.code)
        return DoorError(status, code, str(self), extra={"reason": self.reason})


# What the errors of `sync` and `drivers` mean at a door (a subclass answers as its nearest listed class).
FOREIGN: Mapping[type[Exception], Door] = {
    StoreClosed: Door(503, "courseware_restarting", retry_after=2),
    NotInStore: Door(404, "not_in_store"),
    QuotaExceeded: Door(507, "courseware_storage_full"),
    BudgetExhausted: Door(503, "data_cap_reached"),
    TrustError: Door(502, "courseware_untrusted"),
    FetchError: Door(502, "fetch_failed"),
    DeviceSpecError: Door(400, "bad_device_spec"),
    DeviceUnavailable: Door(503, "device_unavailable"),
    DeviceEnded: Door(410, "device_ended"),
}

# Every class a door answers through `door_meaning` (for `except` and exception handlers).
DOOR_ERRORS: tuple[type[Exception], ...] = (ClassboxError, *FOREIGN)

Overrides = Mapping[type[Exception], Door]


def _own_meaning(err: Exception) -> DoorError | None:
    """What `err` says by its class: ours declare it, FOREIGN lists the others (nearest class first)."""
    if isinstance(err, ClassboxError):
        return err.door_error()
    door = next((FOREIGN[cls] for cls in type(err).__mro__ if cls in FOREIGN), None)
    return DoorError(door.status, door.code, str(err), door.retry_after) if door else None


def _routed(err: Exception, own: DoorError | None, overrides: Overrides) -> DoorError | None:
    """The nearest override of `err`'s class, unless a nearer class has a meaning of its own; None when none applies."""
    for cls in type(err).__mro__:
        door = overrides.get(cls)
        if door is not None:
            code = door.code or (own.code if own else "")
            extra = own.extra if own else {}
            return DoorError(door.status, code, own.message if own else str(err), door.retry_after, extra)
        if "status" in vars(cls) or cls in FOREIGN:
            return None
    return None


def door_meaning(err: Exception, overrides: Overrides | None = None) -> DoorError | None:
    """What `err` says at a door: a route's override of its class, else the class's own meaning; None if unknown."""
    own = _own_meaning(err)
    return (_routed(err, own, overrides) if overrides else None) or own
