"""One typed, validated schema for every setting of the box; TOML on disk, atomic saves.

The defaults run with no hardware (synthetic camera, microphone and board, local courseware), so
`classbox demo` and a box with an empty config file both start. Every door reads and writes
settings through `BoxConfig`; nothing keeps its own copy.

The sections sit in modules by what they configure (`box`, `doors`, `media`, `room`, `lessons`,
`stream`, `sync`), `schema` assembles them into `BoxConfig`, `files` reads and writes it; every
name is imported from here.
"""

from __future__ import annotations

from edge.core.config.base import Language, Name, Port, Section
from edge.core.config.box import BoxSection, LoggingSection, MetricsSection
from edge.core.config.doors import AdminSection, ConsoleSection, DiscoverySection, WebSection
from edge.core.config.files import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    SECRET_NAME,
    SHAPES,
    SHOWN_CHARS,
    _secret_fields,
    _sections,
    config_path,
    dump_config,
    load_config,
    parse_config,
    rollback_config,
    save_config,
)
from edge.core.config.lessons import LessonSection, RecordingSection, TimetableSection
from edge.core.config.media import CameraConfig, MicrophoneConfig
from edge.core.config.room import BoardSection, DisplayInput, DisplaySection, PtzPreset, PtzSection
from edge.core.config.schema import BoxConfig
from edge.core.config.stream import (
    IceServer,
    LowestLayerConfig,
    StreamSection,
    UplinkLayer,
    UplinkSection,
    VideoLayerConfig,
)
from edge.core.config.sync import BudgetSection, BudgetWindow, CoursewareSection, UploadSection

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "SECRET_NAME",
    "SHAPES",
    "SHOWN_CHARS",
    "AdminSection",
    "BoardSection",
    "BoxConfig",
    "BoxSection",
    "BudgetSection",
    "BudgetWindow",
    "CameraConfig",
    "ConsoleSection",
    "CoursewareSection",
    "DiscoverySection",
    "DisplayInput",
    "DisplaySection",
    "IceServer",
    "Language",
    "LessonSection",
    "LoggingSection",
    "LowestLayerConfig",
    "MetricsSection",
    "MicrophoneConfig",
    "Name",
    "Port",
    "PtzPreset",
    "PtzSection",
    "RecordingSection",
    "Section",
    "StreamSection",
    "TimetableSection",
    "UplinkLayer",
    "UplinkSection",
    "UploadSection",
    "VideoLayerConfig",
    "WebSection",
    "_secret_fields",
    "_sections",
    "config_path",
    "dump_config",
    "load_config",
    "parse_config",
    "rollback_config",
    "save_config",
]
