"""The config schema: defaults run with no hardware, bad files are refused line by line, saves are atomic."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import BoxConfig, config_path, dump_config, load_config, rollback_config, save_config
from edge.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "classbox.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_hardware() -> None:
    config = BoxConfig()
    assert [c.source for c in config.cameras] == ["synthetic"]
    assert [m.source for m in config.microphones] == ["synthetic"]
    assert config.web.port == 8080


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == BoxConfig()


def test_every_problem_is_one_line_naming_key_value_and_what_is_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[web]
port = 70000
panel_addresses = ["10.0.0.300"]
colour = "blue"

[[cameras]]
name = "teacher"
source = "webcam"
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("web.port: 70000 is not allowed") and "65535" in p for p in problems)
    assert any(p.startswith("web.panel_addresses: ") and "10.0.0.300" in p for p in problems)
    assert "web.colour: unknown setting" in problems
    assert any(p.startswith("cameras.0.source: 'webcam'") and "synthetic" in p for p in problems)


def test_toml_syntax_error_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[web\nport = 1"))
    assert "not valid TOML" in caught.value.problems[0]


def test_duplicate_device_names_are_refused() -> None:
    from edge.config import parse_config

    with pytest.raises(ConfigError, match="names must be unique"):
        parse_config({"cameras": [{"name": "a"}, {"name": "a"}]})


def test_relay_only_needs_a_turn_server_and_never_echoes_its_credential() -> None:
    from edge.config import parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config({"stream": {"ice_servers": [{"urls": ["stun:stun.school.example"]}], "relay_only": True}})
    assert caught.value.problems == [
        "stream.relay_only: True is not allowed: relay_only needs a turn: or turns: server in stream.ice_servers"
    ]
    turn = {"urls": ["turn:turn.school.example"], "username": "box", "credential": "s3cret"}
    assert parse_config({"stream": {"ice_servers": [turn], "relay_only": True}}).stream.relay_only


def test_save_is_atomic_keeps_previous_and_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "classbox.toml"
    first = BoxConfig()
    first.box.name = "Room 1"
    save_config(first, path)
    second = BoxConfig()
    second.box.name = "Room 2"
    save_config(second, path)
    assert load_config(path).box.name == "Room 2"
    assert load_config(path.with_name("classbox.toml.prev")).box.name == "Room 1"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert rollback_config(path).box.name == "Room 1"
    assert load_config(path).box.name == "Room 1"


def test_saved_text_round_trips() -> None:
    config = BoxConfig()
    config.web.port = 9000
    import tomllib

    assert BoxConfig.model_validate(tomllib.loads(dump_config(config))) == config


def test_assignment_is_validated() -> None:
    config = BoxConfig()
    with pytest.raises(ValueError, match="less than or equal"):
        config.web.port = 99999


def test_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSBOX_CONFIG", raising=False)
    assert config_path(None) == Path("/etc/classbox/classbox.toml")
    monkeypatch.setenv("CLASSBOX_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(None) == tmp_path / "env.toml"
    assert config_path(tmp_path / "arg.toml") == tmp_path / "arg.toml"
