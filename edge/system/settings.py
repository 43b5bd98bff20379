"""Settings: the config read, validated and saved; the admin page's groups, changes, PINs, history and rollback.

What the admin page and the console's `config get|set` call; the schema, its validation and the
atomic writes are edge/core/config/'s, this puts them behind the service layer. A change from the
admin page is validated by the one schema, saved atomically (the file before it kept as `.prev`)
and kept as a numbered version (`edge.system.config_history`) that rollback can bring back; the
box then applies what a running component can take at once, the rest after a restart. Secrets are
never sent back: the page gets "" and the list of secrets that are set, and "" in a change keeps
the secret there was.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.core.config import (
    SECRET_NAME,
    BoxConfig,
    _secret_fields,
    _sections,
    load_config,
    parse_config,
    rollback_config,
    save_config,
)
from edge.core.errors import ClassboxError, ConfigError, DoorError
from edge.core.texts import N_
from edge.system.accounts import hash_pin
from edge.system.config_history import ConfigHistory
from sync.atomic import previous_path

log = logging.getLogger(__name__)

NO_FILE = "this box runs without a config file: there is nowhere to save settings"
ORIGIN_KEY = "__origin__"  # a list item's index in the values the page was given (to keep its secrets)
SECRET_REFUSED = N_("a secret: set it on the admin page (PINs: `classbox config set-pin`)")
PIN_FIELDS = {"teacher": "web.teacher_pin_hash", "technician": "console.tech_pin_hash"}


@dataclass(frozen=True)
class Group:
    """A settings page: the config paths it edits, in the order shown."""

    name: str
    title: str
    description: str
    paths: tuple[str, ...]


GROUPS = (
    Group(
        "devices",
        N_("Devices"),
        N_("The cameras and microphones lessons use, the board's pen and touch, the PTZ camera and the room display."),
        ("cameras", "microphones", "board", "ptz", "display"),
    ),
    Group("streaming", N_("Streaming"), N_("Live lessons: layers, viewers, ICE servers."), ("stream", "lesson")),
    Group("courseware", N_("Courseware"), N_("Where courseware comes from and how much is kept."), ("courseware",)),
    Group(
        "timetable",
        N_("Timetable settings"),
        N_("Where the lesson timetable comes from and the courseware fetched ahead for it."),
        ("timetable", "box.time_zone"),
    ),
    Group("bandwidth", N_("Bandwidth"), N_("What sync may use of the internet link, and when."), ("budget",)),
    Group(
        "recording",
        N_("Recording and uploads"),
        N_("Recordings on the box and where they go."),
        ("recording", "upload"),
    ),
    Group(
        "cloud",
        N_("Live to cloud"),
        N_("Publishing live lessons to a cloud server (WHIP) for students beyond the box's own link."),
        ("uplink",),
    ),
    Group(
        "identity",
        N_("Box identity"),
        N_("The box's name, room and language."),
        ("box.name", "box.room", "box.language"),
    ),
    Group(
        "network",
        N_("Network and console"),
        N_("The web port, the panel's addresses, discovery and the serial console."),
        (
            "web.host",
            "web.port",
            "web.https_port",
            "web.panel_addresses",
            "web.public_url",
            "discovery",
            "console.serial_port",
            "console.baudrate",
            "console.idle_logout_s",
            "console.socket_path",
            "console.network_dir",
            "console.net_confirm_s",
        ),
    ),
    Group(
        "system",
        N_("System"),
        N_("Storage, logging and the dashboard's history."),
        ("box.id", "box.state_dir", "box.reserve_mb", "admin", "logging", "metrics"),
    ),
)
GROUP_BY_NAME = {group.name: group for group in GROUPS}
# Read again where they are used (per lesson, viewer, pull or render) or applied by a component at once.
LIVE_PATHS = (
    "box.name",
    "box.room",
    "box.language",
    "lesson.",
    "stream.",
    "courseware.",
    "budget.",
    "timetable.",
    "box.time_zone",
    "uplink.",
    "logging.",
    "metrics.",
)


class SettingsRefused(ClassboxError):
    """A change the schema refuses: `errors` are (path, message) pairs, one per field."""

    status = 422
    code = "settings_refused"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['loc']}: {e['msg']}" for e in errors))
        self.errors = errors

    def door_error(self) -> DoorError:
        """422 with each field's message (never the refused value)."""
        fields = [{"loc": e["loc"], "msg": e["msg"]} for e in self.errors]
        message = "the settings were not saved: see each field"
        return DoorError(self.status, self.code, message, extra={"errors": fields})


class NoConfigFile(ConfigError):
    """The box runs without a config file it may write to."""


# -- values, paths and secrets ------------------------------------------------------------------


def get_path(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a config dump (KeyError when absent)."""
    value: Any = data
    for part in path.split("."):
        value = value[part]
    return value


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path of a config dump."""
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def is_secret(key: str) -> bool:
    """True for a field whose value is never shown (the schema's repr=False fields, or a secret's name)."""
    return key in _secret_fields() or bool(SECRET_NAME.search(key))


def secret_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """The dotted paths of every secret that holds a value in `value`."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            if is_secret(key) and isinstance(item, str):
                if item:
                    yield path
            else:
                yield from secret_paths(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_paths(item, f"{prefix}.{index}")


def masked(value: Any, shown: str = "") -> Any:
    """`value` with every secret replaced by `shown`."""
    if isinstance(value, dict):
        return {k: (shown if is_secret(k) and isinstance(v, str) and v else masked(v, shown)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item, shown) for item in value]
    return value


def keep_secrets(new: Any, old: Any) -> Any:
    """`new` where every empty secret takes the value it had in `old` (list items follow their `__origin__`)."""
    if isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        return {
            key: (
                old_map.get(key, "")
                if is_secret(key) and value in ("", None)
                else keep_secrets(value, old_map.get(key))
            )
            for key, value in new.items()
        }
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        return [keep_secrets(_strip_origin(item), _origin(item, old_list)) for item in new]
    return new


def _origin(item: Any, old_list: list[Any]) -> Any:
    index = item.get(ORIGIN_KEY) if isinstance(item, dict) else None
    return (
        old_list[index]
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(old_list)
        else None
    )


def _strip_origin(item: Any) -> Any:
    return {k: v for k, v in item.items() if k != ORIGIN_KEY} if isinstance(item, dict) else item


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a config dump by dotted path (lists of scalars are leaves)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        out = {f"{prefix}.length": len(value)}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}"))
        return out
    return {prefix: value}


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted paths whose values differ between two config dumps."""
    before, after = flatten(old), flatten(new)
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def field_errors(err: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as (dotted path, message) pairs, never with the refused value."""
    errors = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = N_("not a setting")
        errors.append({"loc": loc, "msg": message})
    return errors


def schema() -> dict[str, Any]:
    """The config's JSON schema with every secret marked `writeOnly` and `format: password`."""
    document = copy.deepcopy(BoxConfig.model_json_schema())
    models = {cls.__name__: cls for cls in _sections()}
    for name, definition in [(BoxConfig.__name__, document), *document.get("$defs", {}).items()]:
        fields = models[name].model_fields if name in models else {}
        for key, prop in definition.get("properties", {}).items():
            if is_secret(key):
                prop.update(writeOnly=True, format="password")
            if key in fields and fields[key].description:  # pydantic leaves it out beside a $ref
                prop["description"] = fields[key].description
    return document


# -- the service ----------------------------------------------------------------------------------


class Settings:
    """The config the box runs on and the file it is read from and saved to (None: a demo, nothing to save).

    Saving writes the file; applying a change to the running box is for the component it concerns.
    """

    def __init__(
        self,
        config: Callable[[], BoxConfig],
        path: Path | None = None,
        apply: Callable[[BoxConfig, list[str]], None] | None = None,
    ) -> None:
        self._config = config
        self.path = path
        self._apply = apply  # the box takes a saved config and applies what it can at once

    @property
    def config(self) -> BoxConfig:
        """The config the box runs on now."""
        return self._config()

    def get(self, key: str) -> Any:
        """One setting by its dotted name (`web.port`, `cameras.0.device`); KeyError for an unknown name."""
        value: Any = self.config.model_dump(mode="json")
        for part in key.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                raise KeyError(f"no setting named {key!r}")
        return value

    def check(self, data: dict[str, Any]) -> BoxConfig:
        """Validate a whole config (as read from TOML or a form); ConfigError with one line per problem."""
        return parse_config(data, "settings")

    def with_changes(self, changes: dict[str, Any]) -> BoxConfig:
        """The current config with `changes` (section -> fields) applied, validated; nothing is saved."""
        data = self.config.model_dump(mode="json")
        for section, fields in changes.items():
            current = data.get(section)
            data[section] = {**current, **fields} if isinstance(current, dict) and isinstance(fields, dict) else fields
        return self.check(data)

    def save(self, config: BoxConfig) -> None:
        """Write `config` atomically to the config file (the one it replaces kept for rollback)."""
        save_config(config, self._file())

    def previous(self) -> BoxConfig | None:
        """The config saved before the last save, if there is one."""
        previous = previous_path(self._file())
        return load_config(previous) if previous.exists() else None

    def rollback(self) -> BoxConfig:
        """Bring back the config file saved before the last save, and return it."""
        return rollback_config(self._file())

    def _file(self) -> Path:
        if self.path is None:
            raise NoConfigFile("settings", [NO_FILE])
        return self.path

    # -- the admin page -------------------------------------------------------------------------

    @property
    def history(self) -> ConfigHistory:
        """The versions kept beside the config file."""
        return ConfigHistory(self._file())

    def groups(self) -> list[dict[str, Any]]:
        """Every settings page: name, title, description, paths."""
        return [
            {"name": g.name, "title": g.title, "description": g.description, "paths": list(g.paths)} for g in GROUPS
        ]

    def values(self, group: Group) -> dict[str, Any]:
        """The group's current values (secrets as "") and the paths of the secrets that are set."""
        current = self.config.model_dump(mode="json")
        picked: dict[str, Any] = {}
        for path in group.paths:
            set_path(picked, path, get_path(current, path))
        return {"values": masked(picked), "secrets_set": sorted(secret_paths(picked))}

    def change(self, group: Group, values: dict[str, Any], by: str) -> dict[str, Any]:
        """Validate and save the group's new values, then apply what can be applied live (raise SettingsRefused)."""
        current = self.config.model_dump(mode="json")
        proposed = copy.deepcopy(current)
        unknown = [{"loc": loc, "msg": N_("not a setting of this page")} for loc in _outside(group, values)]
        if unknown:
            raise SettingsRefused(unknown)
        for path in group.paths:
            try:
                submitted = get_path(values, path)
            except (KeyError, TypeError):
                continue
            set_path(proposed, path, keep_secrets(submitted, get_path(current, path)))
        return self._save(self._validated(proposed), by, note=f"settings:{group.name}")

    def set_one(self, key: str, text: str, by: str) -> dict[str, Any]:
        """Set one setting (`web.port`, `cameras.0.device`) from typed text: JSON, else the text as a string.

        Validated by the one schema and saved as the admin page saves (raise SettingsRefused, KeyError).
        Secrets are not set this way: PINs have `set_pin`, the rest the admin page.
        """
        self.get(key)  # KeyError for an unknown name
        if is_secret(key.rsplit(".", 1)[-1]):
            raise SettingsRefused([{"loc": key, "msg": SECRET_REFUSED}])
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        proposed = self.config.model_dump(mode="json")
        _set_indexed(proposed, key, value)
        return self._save(self._validated(proposed), by, note=f"console:{key}")

    def set_pin(self, which: str, pin: str, by: str) -> dict[str, Any]:
        """Set the teacher or technician PIN (stored as its argon2 hash; raise SettingsRefused)."""
        path = PIN_FIELDS[which]
        try:
            hashed = hash_pin(pin)
        except ValueError as err:
            raise SettingsRefused([{"loc": "pin", "msg": str(err)}]) from err
        proposed = self.config.model_dump(mode="json")
        set_path(proposed, path, hashed)
        return self._save(self._validated(proposed), by, note=f"pin:{which}")

    def roll_back_to(self, number: int, by: str) -> dict[str, Any]:
        """Save version `number` as the current config (a new version) and apply it (raise KeyError, ConfigError)."""
        restored = self.history.load(number)
        return self._save(restored, by, note=f"rollback:{number}")

    def _validated(self, data: dict[str, Any]) -> BoxConfig:
        try:
            return BoxConfig.model_validate(data)
        except ValidationError as err:
            raise SettingsRefused(field_errors(err)) from err

    def _save(self, new: BoxConfig, by: str, note: str) -> dict[str, Any]:
        path = self._file()
        old = self.config
        changed = changed_paths(old.model_dump(mode="json"), new.model_dump(mode="json"))
        history = self.history
        if not changed:  # nothing to save: no new version either
            kept = history.versions()
            return {
                "version": kept[0]["version"] if kept else 0,
                "changed": [],
                "restart_needed": False,
                "restart_for": [],
            }
        if not history.versions() and path.exists():
            history.record(old, "file", [], "file:")
        save_config(new, path)
        version = history.record(new, by, changed, note)
        if self._apply is not None:
            self._apply(new, changed)
        restart = [p for p in changed if not p.startswith(LIVE_PATHS)]
        log.info("settings saved by %s (version %d): %s", by, version, ", ".join(changed))
        return {"version": version, "changed": changed, "restart_needed": bool(restart), "restart_for": restart}


def _outside(group: Group, values: dict[str, Any], prefix: str = "") -> list[str]:
    """The submitted keys that are not (inside) one of the group's paths."""
    outside = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if any(path == p or path.startswith(p + ".") for p in group.paths):
            continue
        if isinstance(value, dict) and any(p.startswith(path + ".") for p in group.paths):
            outside += _outside(group, value, path)
        else:
            outside.append(path)
    return outside


def _set_indexed(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the value at a dotted path whose parts may index lists (`cameras.0.device`); the path exists."""
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
