"""How each component is built from the kernel: the narrow ports the composition root hands it, in one place.

`standard_components` builds the daemon's components in start order and returns them as `Parts`; the
functions above it build one component each (tests use them too). None of them sees the box or a door.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edge.board.pen import BoardInputComponent
from edge.core.component import Component
from edge.courseware import service as courseware_service
from edge.courseware.cache import CoursewareComponent
from edge.courseware.service import CoursewarePort
from edge.discovery.lan import Discovery
from edge.discovery.service import DiscoveryPort
from edge.health.history import MetricsHistory, Watching
from edge.lessons.timetable_feed import TimetableComponent
from edge.media.capture import CameraComponent, MicrophoneComponent, camera_components, microphone_components
from edge.media.devices import CameraPort, MicrophonePort
from edge.media.live import LessonMedia
from edge.media.packets import PacketFanout, PacketSource
from edge.media.signals import SignalChecks
from edge.recording import recordings
from edge.recording.recorder import Recorder
from edge.recording.uploads import Uploads
from edge.room.devices import RoomDevices
from edge.services import Parts, Services
from edge.stream import viewers_service
from edge.stream.viewers import ViewerHub
from edge.stream.whip import Uplink
from edge.system.clock import ClockWatch
from sync.budget import Budget


def no_packets() -> None:
    """The packet source of a box without media: no packets."""
    return None


def wan_budget_of(cw: CoursewarePort | None) -> Callable[[], Budget | None]:
    """The WAN budget as `cw` owns it at each call (None while it is not running: no limit)."""
    return lambda: courseware_service.budget(cw)


def clock_watch(s: Services, **options: Any) -> ClockWatch:
    """The `clock` component."""
    return ClockWatch(s.current_clock, s.bus, **options)


def media(s: Services, camera: CameraPort | None, microphone: MicrophonePort | None, **options: Any) -> LessonMedia:
    """The `media` component: the shared encoders of the lesson's camera and microphone."""
    return LessonMedia(s.current_config, s.lessons, s.lessons, s.mute, camera, microphone, **options)


def viewer_hub(s: Services, packets: PacketSource, **options: Any) -> ViewerHub:
    """The `stream` component: the students watching."""
    return ViewerHub(
        config=s.current_config,
        bus=s.bus,
        lessons=s.lessons,
        live=s.lessons,
        lookup=s.lessons,
        packets=packets,
        board=s.board,
        **options,
    )


def uplink(s: Services, packets: PacketSource, wan_budget: Callable[[], Budget | None], **options: Any) -> Uplink:
    """The `uplink` component: the WHIP publisher to a cloud SFU."""
    return Uplink(
        config=s.current_config,
        bus=s.bus,
        lessons=s.lessons,
        live=s.lessons,
        packets=packets,
        alarms=s.alarms,
        wan_budget=wan_budget,
        **options,
    )


def recorder(s: Services, packets: PacketSource = no_packets, **options: Any) -> Recorder:
    """The `recorder` component."""
    return Recorder(
        config=s.current_config,
        bus=s.bus,
        clock=s.current_clock,
        db=s.database,
        lessons=s.lessons,
        live=s.lessons,
        lookup=s.lessons,
        records=s.timetable,
        alarms=s.alarms,
        disk=s.disk,
        packets=packets,
        mute=s.mute,
        **options,
    )


def signal_checks(
    s: Services, camera: CameraComponent | None, microphone: MicrophoneComponent | None, *args: Any, **options: Any
) -> SignalChecks:
    """The `signals` component, on the box's monotonic clock unless `clock` is given."""
    options.setdefault("clock", s.clock.monotonic)
    return SignalChecks(s.alarms, s.mute, camera, microphone, *args, **options)


def board_input(s: Services) -> BoardInputComponent:
    """The `board-input` component."""
    return BoardInputComponent(s.current_config, s.bus, s.board)


def discovery(s: Services, **options: Any) -> Discovery:
    """The `discovery` component."""
    return Discovery(s.current_config, s.id, s.https_fingerprint, **options)


def courseware(s: Services, lan: DiscoveryPort | None = None) -> CoursewareComponent:
    """The `courseware` component (its LAN peers browse on `lan`'s zeroconf)."""
    return CoursewareComponent(s.current_config, s.current_clock, s.lessons, lan)


def room(s: Services) -> RoomDevices:
    """The `room` component: the PTZ camera and the board display."""
    return RoomDevices(s.current_config, s.bus, s.alarms.raise_alarm, s.alarms.clear_alarm)


def history(s: Services, viewers: Callable[[], Sequence[Watching]], cw: CoursewarePort | None) -> MetricsHistory:
    """The `history` component."""
    return MetricsHistory(
        config=s.current_config, bus=s.bus, clock=s.current_clock, viewers=viewers, wan_budget=wan_budget_of(cw)
    )


def timetable(s: Services, cw: CoursewarePort | None = None, **options: Any) -> TimetableComponent:
    """The `timetable` component."""
    return TimetableComponent(
        config=s.current_config,
        bus=s.bus,
        clock=s.current_clock,
        timetable=s.timetable,
        alarms=s.alarms,
        clock_trust=s.clock_trust,
        courseware=cw,
        **options,
    )


def uploads(s: Services, cw: CoursewarePort | None = None, **options: Any) -> Uploads:
    """The `uploads` component (a recording's board PDF drawn over `cw`'s pages)."""
    return Uploads(
        config=s.current_config,
        bus=s.bus,
        db=s.database,
        box_id=s.id,
        wan_budget=wan_budget_of(cw),
        save_board_pdf=lambda recording_id: recordings.save_board_pdf(s.database(), cw, recording_id),
        **options,
    )


def standard_components(s: Services) -> Parts:
    """The box's components in start order (the clock, devices, media, sync; the daemon adds the doors last)."""
    cameras = camera_components(s.config, s.bus)  # first: media reads their sources
    microphones = microphone_components(s.config, s.bus, s.mute)
    camera, microphone = (cameras[0] if cameras else None), (microphones[0] if microphones else None)
    # Built in this order: stop hooks run in reverse (the uplink's DELETE before the encoders stop).
    live = media(s, camera, microphone)  # the lesson's picture and its sound

    def packets() -> PacketFanout | None:
        return live.fanout

    def budget() -> Budget | None:  # read per call: the courseware that owns it is built below
        return courseware_service.budget(cw)

    hub = viewer_hub(s, packets)
    published = uplink(s, packets, budget, packetizer=hub.packetizer)  # the viewers' packetizer: split once
    recording = recorder(s, packets)
    lan = discovery(s)  # before courseware: its LAN peers browse on discovery's zeroconf
    cw = courseware(s, lan)
    devices, feed = room(s), timetable(s, cw)
    sampled = history(s, lambda: viewers_service.viewers(hub), cw)
    # The recorder after media: its lesson hooks run after the encoders start and before they stop.
    streaming: list[Component] = [live, hub, published, recording, signal_checks(s, camera, microphone)]
    sync: list[Component] = [devices, lan, cw, feed, uploads(s, cw)]
    ordered = [clock_watch(s), *cameras, *microphones, *streaming, board_input(s), *sync, sampled]
    return Parts(
        camera=camera,
        microphone=microphone,
        cameras=tuple(cameras),
        media=live,
        viewer_hub=hub,
        uplink=published,
        recorder=recording,
        discovery=lan,
        courseware=cw,
        room=devices,
        history=sampled,
        timetable_feed=feed,
        components=tuple(ordered),
    )
