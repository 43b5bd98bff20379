"""`BoxConfig`: every section in one schema, in the order the admin page and the file show them."""

from __future__ import annotations

from pydantic import Field, model_validator

from edge.core.config.base import Section
from edge.core.config.box import (
    AdminSection,
    BoxSection,
    BudgetSection,
    ConsoleSection,
    CoursewareSection,
    DiscoverySection,
    LoggingSection,
    MetricsSection,
    UploadSection,
    WebSection,
)
from edge.core.config.devices import BoardSection, CameraConfig, DisplaySection, MicrophoneConfig, PtzSection
from edge.core.config.lessons import LessonSection, RecordingSection, StreamSection, TimetableSection, UplinkSection
from edge.core.texts import N_


class BoxConfig(Section):
    """The whole configuration of a box."""

    box: BoxSection = Field(
        default_factory=BoxSection, title=N_("Box"), description=N_("Who this box is and where it keeps its state.")
    )
    web: WebSection = Field(
        default_factory=WebSection,
        title=N_("Web pages"),
        description=N_("The one port every web page and the API share."),
    )
    cameras: list[CameraConfig] = Field(
        default_factory=lambda: [CameraConfig()],
        title=N_("Cameras"),
        description=N_("The cameras lessons use; the first one is the lesson's picture."),
    )
    microphones: list[MicrophoneConfig] = Field(
        default_factory=lambda: [MicrophoneConfig()],
        title=N_("Microphones"),
        description=N_("The microphones lessons use; the first one is the lesson's sound."),
    )
    ptz: PtzSection = Field(
        default_factory=PtzSection,
        title=N_("PTZ camera"),
        description=N_("The lesson camera's presets and moves (VISCA)."),
    )
    display: DisplaySection = Field(
        default_factory=DisplaySection,
        title=N_("Room display"),
        description=N_("The display or projector the panel switches (PJLink or RS-232)."),
    )
    lesson: LessonSection = Field(
        default_factory=LessonSection, title=N_("Lessons"), description=N_("Lessons and who may join them.")
    )
    stream: StreamSection = Field(
        default_factory=StreamSection,
        title=N_("Streaming"),
        description=N_("Live streaming to students: ICE servers and the encoded layers."),
    )
    recording: RecordingSection = Field(
        default_factory=RecordingSection,
        title=N_("Recording"),
        description=N_("Recording of lessons on the box's disk."),
    )
    upload: UploadSection = Field(
        default_factory=UploadSection, title=N_("Uploads"), description=N_("Where finished recordings are uploaded to.")
    )
    courseware: CoursewareSection = Field(
        default_factory=CoursewareSection,
        title=N_("Courseware"),
        description=N_("The courseware cache and where it syncs from."),
    )
    timetable: TimetableSection = Field(
        default_factory=TimetableSection,
        title=N_("Timetable"),
        description=N_("The lesson timetable and the courseware fetched ahead for it."),
    )
    budget: BudgetSection = Field(
        default_factory=BudgetSection,
        title=N_("Bandwidth"),
        description=N_("How much of the internet link sync may use."),
    )
    uplink: UplinkSection = Field(
        default_factory=UplinkSection,
        title=N_("Live to cloud"),
        description=N_("Publishing live lessons to a cloud server (WHIP) for students beyond the box's link."),
    )
    console: ConsoleSection = Field(
        default_factory=ConsoleSection, title=N_("Serial console"), description=N_("The technician's serial console.")
    )
    discovery: DiscoverySection = Field(
        default_factory=DiscoverySection,
        title=N_("Discovery"),
        description=N_("Finding other boxes on the LAN and being found."),
    )
    board: BoardSection = Field(
        default_factory=BoardSection,
        title=N_("Interactive board"),
        description=N_("The board's pen and touch input and its ink."),
    )
    admin: AdminSection = Field(
        default_factory=AdminSection,
        title=N_("Admin sign-in"),
        description=N_("How long an admin stays signed in."),
    )
    logging: LoggingSection = Field(
        default_factory=LoggingSection, title=N_("Logging"), description=N_("How much the box writes to its log.")
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection,
        title=N_("Dashboard history"),
        description=N_("The history behind the dashboard's graphs."),
    )

    @model_validator(mode="after")
    def _unique_device_names(self) -> BoxConfig:
        for kind, items in (("cameras", self.cameras), ("microphones", self.microphones)):
            names = [item.name for item in items]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: names must be unique, repeated: {', '.join(duplicates)}")
        return self
