"""One typed, validated schema for every setting of the box; TOML on disk, atomic saves.

The defaults run with no hardware (synthetic camera, microphone and board, local courseware), so
`classbox demo` and a box with an empty config file both start. Every door reads and writes
settings through `BoxConfig`; nothing keeps its own copy.

The sections sit in three modules by what they configure (`devices`: the classroom's devices;
`lessons`: lessons and how they reach students; `box`: the box, its doors and its link), `schema`
assembles them into `BoxConfig`, `files` reads and writes it; every name is imported from here.
"""

from __future__ import annotations

from edge.core.config.base import Language, Name, Port, Section
from edge.core.config.box import (
    AdminSection,
    BoxSection,
    BudgetSection,
    BudgetWindow,
    ConsoleSection,
    CoursewareSection,
    DiscoverySection,
    LoggingSection,
    MetricsSection,
    UploadSection,
    WebSection,
)
from edge.core.config.devices import (
    BoardSection,
    CameraConfig,
    DisplayInput,
    DisplaySection,
    MicrophoneConfig,
    PtzPreset,
    PtzSection,
)
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
from edge.core.config.lessons import (
    IceServer,
    LessonSection,
    LowestLayerConfig,
    RecordingSection,
    StreamSection,
    TimetableSection,
    UplinkLayer,
    UplinkSection,
    VideoLayerConfig,
)
from edge.core.config.schema import BoxConfig

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
