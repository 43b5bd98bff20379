"""The config schema: defaults run with no hardware, bad files are refused line by line, saves are atomic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.core.config import BoxConfig, config_path, dump_config, load_config, rollback_config, save_config
from edge.core.errors import ConfigError
from tests.helpers import REPO


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
    from edge.core.config import parse_config

    with pytest.raises(ConfigError, match="names must be unique"):
        parse_config({"cameras": [{"name": "a"}, {"name": "a"}]})


def test_relay_only_needs_a_turn_server_and_never_echoes_its_credential() -> None:
    from edge.core.config import parse_config

    stun = {"urls": ["stun:stun.school.example"], "username": "box", "credential": "Zt6qW9pLr2xV-stun"}
    with pytest.raises(ConfigError) as caught:
        parse_config({"stream": {"ice_servers": [stun], "relay_only": True}})
    assert caught.value.problems == [
        "stream.relay_only: True is not allowed: relay_only needs a turn: or turns: server in stream.ice_servers"
    ]
    turn = {"urls": ["turn:turn.school.example"], "username": "box", "credential": "Q7m-turn-secret"}
    with pytest.raises(ConfigError) as caught:  # [stream.ice_servers] written where [[stream.ice_servers]] goes
        parse_config({"stream": {"ice_servers": turn, "relay_only": True}})
    assert caught.value.problems[0] == "stream.ice_servers: must be an array ([...] or [[section]])"
    assert "Q7m-turn-secret" not in str(caught.value)
    assert parse_config({"stream": {"ice_servers": [turn], "relay_only": True}}).stream.relay_only


TOKEN = "tus_9f8Kq2LmZx7RtW4vB1nC6pYs"
TURN_CREDENTIAL = "Zt6qW9pLr2xV_turn"
NUMERIC_TOKEN = 480913377215590061
TEACHER_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$Jm8WqZbQpP1Ff5mY3k2cTn9r0XvLh4sEaDgKoUi7Bw0"
TECH_HASH = "$argon2id$v=19$m=65536,t=3,p=4$dGVjaHNhbHR0ZWNo$Vx3nR7qLp0Zw2Ks9Ye4Hm6Tj1Ua8Bc5Df0Gh3Ik6Lm8"
SECRETS_OK = f"""
[web]
teacher_pin_hash = "{TEACHER_HASH}"
[upload]
tus_url = "https://uploads.school.example/files"
token = "{TOKEN}"
[console]
tech_pin_hash = "{TECH_HASH}"
[[stream.ice_servers]]
urls = ["turn:turn.school.example:3478"]
username = "box"
credential = "{TURN_CREDENTIAL}"
"""
REFUSED = {
    # a check on the whole config: its input is every section, secrets included
    "model": (SECRETS_OK + '[[cameras]]\nname = "teacher"\n[[cameras]]\nname = "teacher"\n', ["(top level): cameras:"]),
    # whole sections of the wrong shape: a table where an array goes and the reverse
    "section": (
        f"""
[[web]]
teacher_pin_hash = "{TEACHER_HASH}"
[upload]
token = "{TOKEN}"
[console]
tech_pin_hash = "{TECH_HASH}"
[stream]
relay_only = true
ice_servers = {{ urls = ["turn:turn.school.example"], username = "box", credential = "{TURN_CREDENTIAL}" }}
""",
        ["web: ", "stream.ice_servers: "],
    ),
    # the secret fields themselves, each with a value of the wrong form
    "secret": (
        f"""
[web]
teacher_pin_hash = "{TEACHER_HASH.replace("argon2id", "2b")}"
[upload]
token = {NUMERIC_TOKEN}
[console]
tech_pin_hash = "{TECH_HASH.replace("$argon2id$", "")}"
[[stream.ice_servers]]
urls = ["turn:turn.school.example"]
credential = ["{TURN_CREDENTIAL}"]
""",
        ["web.teacher_pin_hash: ", "upload.token: ", "console.tech_pin_hash: ", "stream.ice_servers.0.credential: "],
    ),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_refused_config_never_echoes_a_secret(tmp_path: Path, kind: str) -> None:
    text, keys = REFUSED[kind]
    path = write(tmp_path, text)
    secrets = [
        TOKEN,
        TURN_CREDENTIAL,
        *TEACHER_HASH.split("$")[-2:],
        *TECH_HASH.split("$")[-2:],
        str(NUMERIC_TOKEN),
    ]
    for command in (["config", "check", str(path)], ["run", "--config", str(path)]):
        result = subprocess.run(
            [sys.executable, "-m", "edge", *command], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        problems = [line.strip() for line in result.stderr.splitlines()[1:]]
        assert all(any(p.startswith(key) for p in problems) for key in keys), problems
        assert [s for s in secrets if s in output] == [], output
        assert "{'" not in output, output  # no section or mapping is echoed


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


def named(name: str) -> BoxConfig:
    config = BoxConfig()
    config.box.name = name
    return config


def crash_child(*args: str | Path) -> Any:
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "crash_config.py"), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def names_on_disk(directory: Path) -> tuple[str, str]:
    path = directory / "classbox.toml"
    for file in (path, path.with_name("classbox.toml.prev")):
        assert file.stat().st_mode & 0o777 == 0o600, file
    return load_config(path).box.name, load_config(path.with_name("classbox.toml.prev")).box.name


def crash_each_step(tmp_path: Path, op: str, prepare: Callable[[Path], None]) -> list[tuple[str, tuple[str, str]]]:
    """Run `op` in a child SIGKILLed at each of its steps in turn; (step, (config, .prev) names) per step."""
    scratch = tmp_path / "count"
    prepare(scratch)
    steps: list[str] = crash_child("count", op, scratch)
    dirs = [tmp_path / f"step-{i}" for i in range(1, len(steps) + 1)]
    for directory in dirs:
        prepare(directory)
    outcomes = crash_child("kill", op, *dirs)
    assert outcomes == ["killed"] * len(steps), list(zip(steps, outcomes, strict=True))
    return [(step, names_on_disk(d)) for step, d in zip(steps, dirs, strict=True)]


def saved_twice_with_leftovers(directory: Path) -> None:
    """Room 1 saved over Room 0, and what crashes of older code left: the fixed-name link, a torn temp."""
    path = directory / "classbox.toml"
    save_config(named("Room 0"), path)
    save_config(named("Room 1"), path)
    os.link(path, directory / "classbox.toml.prev.new")
    (directory / ".classbox.toml.new-0123456789ab.tmp").write_text("[box]\nname = ")


def test_a_save_killed_at_any_step_leaves_whole_versions_and_the_next_save_works(tmp_path: Path) -> None:
    results = crash_each_step(tmp_path, "save", saved_twice_with_leftovers)
    assert {"write", "fsync", "link", "replace"} <= {step for step, _ in results}
    allowed = {("Room 1", "Room 0"), ("Room 1", "Room 1"), ("Room new", "Room 1")}
    assert all(names in allowed for _, names in results), results
    assert results[-1][1] == ("Room new", "Room 1")  # killed before its last step (releasing the lock) it is done
    for index, (_, (current, _prev)) in enumerate(results, start=1):
        directory = tmp_path / f"step-{index}"
        save_config(named("Room 3"), directory / "classbox.toml")
        assert names_on_disk(directory) == ("Room 3", current)
        assert sorted(p.name for p in directory.iterdir()) == ["classbox.toml", "classbox.toml.prev"]
        assert rollback_config(directory / "classbox.toml").box.name == current


def test_a_rollback_killed_at_any_step_swaps_whole_or_not_at_all_and_the_next_works(tmp_path: Path) -> None:
    def saved_twice(directory: Path) -> None:
        save_config(named("Room 1"), directory / "classbox.toml")
        save_config(named("Room 2"), directory / "classbox.toml")

    results = crash_each_step(tmp_path, "rollback", saved_twice)
    assert "exchange" in {step for step, _ in results}
    assert all(names in {("Room 2", "Room 1"), ("Room 1", "Room 2")} for _, names in results), results
    for index, (_, (current, previous)) in enumerate(results, start=1):
        path = tmp_path / f"step-{index}" / "classbox.toml"
        assert rollback_config(path).box.name == previous
        assert names_on_disk(path.parent) == (previous, current)


def test_rollback_without_an_exchanging_filesystem_still_swaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import sync.atomic

    def unsupported(first: Path, second: Path) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(sync.atomic, "_rename_exchange", unsupported)
    path = tmp_path / "classbox.toml"
    save_config(named("Room 1"), path)
    save_config(named("Room 2"), path)
    assert rollback_config(path).box.name == "Room 1"
    assert names_on_disk(tmp_path) == ("Room 1", "Room 2")


def test_rollback_refuses_an_invalid_prev_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "classbox.toml"
    save_config(named("Room 1"), path)
    path.with_name("classbox.toml.prev").write_text("[web]\nport = 0\n")
    with pytest.raises(ConfigError, match="web.port"):
        rollback_config(path)
    assert load_config(path).box.name == "Room 1"


def test_the_defaults_round_trip_through_save_and_load_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "classbox.toml"
    save_config(BoxConfig(), path)
    loaded = load_config(path)
    assert loaded == BoxConfig()
    assert loaded.model_dump(mode="json") == BoxConfig().model_dump(mode="json")
    assert dump_config(loaded) == path.read_text()
