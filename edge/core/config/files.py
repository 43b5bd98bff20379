"""The config on disk: TOML read and validated with one line per problem, atomic saves, rollback."""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from edge.core.config.base import Section
from edge.core.config.schema import BoxConfig
from edge.core.errors import ConfigError
from edge.core.logs import redact
from sync.atomic import exchange_atomic, previous_path, write_atomic

DEFAULT_CONFIG_PATH = Path("/etc/classbox/classbox.toml")
CONFIG_ENV = "CLASSBOX_CONFIG"


SECRET_NAME = re.compile(r"(token|credential|secret|password|passwd|_hash)$", re.IGNORECASE)
SHOWN_CHARS = 80
SHAPES = {
    "model_type": "must be a table ([section] or {key = value})",
    "list_type": "must be an array ([...] or [[section]])",
}


def _sections(base: type[Section] = Section) -> Iterator[type[Section]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _sections(sub)


@functools.cache
def _secret_fields() -> frozenset[str]:
    """Every field of the schema whose value is never shown (repr=False), wherever it sits."""
    return frozenset(name for cls in _sections() for name, field in cls.model_fields.items() if not field.repr)


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    hidden = _secret_fields()
    return any(isinstance(part, str) and (part in hidden or SECRET_NAME.search(part)) for part in loc)


def _is_structure(value: object) -> bool:
    """A section, a mapping or a list holding them: shown by its key alone (it may hold secrets)."""
    if isinstance(value, dict):
        return True
    return isinstance(value, list | tuple) and any(isinstance(item, dict | list | tuple) for item in value)


def _shown(value: object) -> str:
    text = redact(repr(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _problem(item: ErrorDetails) -> str:
    """One line for one validation error: the key and what is wrong; the value only if it is safe to show."""
    where = _location(item["loc"])
    message = SHAPES.get(item["type"], item["msg"].removeprefix("Value error, "))
    if item["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    if item["type"] == "missing":
        return f"{where}: required setting is missing"
    if _is_secret(item["loc"]):
        return f"{where}: the value (a secret, not shown) is not allowed: {message}"
    if _is_structure(item["input"]):
        return f"{where}: {message}"
    return f"{where}: {_shown(item['input'])} is not allowed: {message}"


def _problems(err: ValidationError) -> list[str]:
    return [_problem(item) for item in err.errors()]


def parse_config(data: dict[str, Any], source: str = "config") -> BoxConfig:
    """Validate a mapping (as read from TOML); raise ConfigError with one line per problem."""
    try:
        return BoxConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, _problems(err)) from err


def load_config(path: Path) -> BoxConfig:
    """Read and validate a TOML config file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read the file: {err.strerror}"]) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(str(path), [f"not valid TOML: {err}"]) from err
    return parse_config(data, str(path))


def config_path(explicit: Path | None) -> Path:
    """The file to load: --config, else $CLASSBOX_CONFIG, else /etc/classbox/classbox.toml."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def dump_config(config: BoxConfig) -> str:
    """The config as TOML text (every setting, secrets included: the file is mode 0600)."""
    data = config.model_dump(mode="json")
    return tomli_w.dumps(data)


def save_config(config: BoxConfig, path: Path) -> None:
    """Validate and write atomically; the file replaced is kept as `<name>.prev` for rollback."""
    checked = parse_config(config.model_dump(mode="json"), str(path))
    write_atomic(path, dump_config(checked).encode(), mode=0o600, keep_previous=True)


def rollback_config(path: Path) -> BoxConfig:
    """Bring back the version saved before the last save; the current one becomes `.prev` (one atomic swap)."""
    previous = previous_path(path)
    restored = load_config(previous)
    if path.exists():
        exchange_atomic(path, previous)
    else:
        write_atomic(path, previous.read_bytes(), mode=0o600)
    return restored
