"""The console engine without a daemon: the line editor's state machine, and sessions over an in-memory transport
(idle logout, lock-out, the offline commands), and the network changes' time-out against a directory root."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge.box import Box
from edge.core.config import BoxConfig, ConsoleSection
from edge.core.events import EventBus
from edge.doors.console.commands import serve
from edge.doors.console.engine import (
    GARBAGE,
    MAX_GARBAGE,
    MAX_LINE,
    PROMPT,
    TOO_LONG,
    LineEditor,
    QueueTransport,
    Session,
)
from edge.system import network as network_module
from edge.system.accounts import PinGate, hash_pin
from edge.system.network import Network, NetworkError, Wanted, addresses, interfaces, parse_wanted
from sync.clock import Clock

PIN = "2468"
PIN_HASH = hash_pin(PIN)  # once, outside any test's loop
UP, DOWN, LEFT = b"\x1b[A", b"\x1b[B", b"\x1b[D"


def lines(editor: LineEditor, data: bytes) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in editor.feed(data)]


# -- the line editor --------------------------------------------------------------------------------------


def test_backspace_ctrl_u_and_one_line_per_crlf() -> None:
    editor = LineEditor()
    editor.start("> ")
    assert lines(editor, b"stauts\x7f\x7f\x7ftus\r\n") == [("line", "status")]
    assert lines(editor, b"garbage line\x15logs\n") == [("line", "logs")]
    assert lines(editor, b"\r") == [("line", "")]


def test_history_arrows_and_cursor_editing() -> None:
    editor = LineEditor()
    for text in (b"status\r", b"logs 5\r"):
        editor.start("> ")
        editor.feed(text)
    editor.start("> ")
    assert lines(editor, UP + UP + b"\r") == [("line", "status")]
    editor.start("> ")
    assert lines(editor, UP + UP + UP + DOWN + b"\r") == [("line", "logs 5")]  # history: status, logs 5, status
    editor.start("> ")
    assert lines(editor, b"lgs" + LEFT + LEFT + b"o\r") == [("line", "logs")]  # typed in the middle


def test_ctrl_c_ctrl_d_and_tab_are_events() -> None:
    editor = LineEditor()
    editor.start("> ")
    assert lines(editor, b"sta\t") == [("tab", "sta")]
    assert lines(editor, b"\x03") == [("interrupt", "")]
    editor.start("> ")
    assert lines(editor, b"\x04") == [("eof", "")]


def test_a_secret_line_echoes_stars_and_stays_out_of_the_history() -> None:
    editor = LineEditor()
    editor.start("PIN: ", secret=True)
    editor.output.clear()
    assert lines(editor, b"1234\r") == [("line", "1234")]
    assert b"1234" not in editor.output
    assert b"****" in editor.output
    assert editor.history == []


def test_an_over_long_line_is_refused_whole() -> None:
    editor = LineEditor()
    editor.start("> ")
    assert lines(editor, b"x" * (MAX_LINE + 50) + b"\r") == [("refused", TOO_LONG)]
    editor.start("> ")
    assert lines(editor, b"status\r") == [("line", "status")]  # the next line is read as usual


def test_garbage_bytes_are_refused_at_enter_or_after_a_run_of_them() -> None:
    editor = LineEditor()
    editor.start("> ")
    assert lines(editor, b"sta\xff\x01tus\r") == [("refused", GARBAGE)]
    editor.start("> ")
    assert lines(editor, bytes(range(0x80, 0x80 + MAX_GARBAGE))) == [("refused", GARBAGE)]
    assert lines(editor, "état\r".encode()) == [("line", "état")]  # UTF-8 text is text


# -- sessions over an in-memory transport -------------------------------------------------------------------


async def _until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Terminal:
    """The technician's side of a QueueTransport: type bytes, wait for text."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.mark = 0
        self.transport = QueueTransport(self.out.extend, "test")

    def type(self, data: bytes) -> None:
        self.transport.feed(data)

    async def expect(self, text: str, within: float = 10.0) -> str:
        """Wait until `text` is written after the last match; returns what came before it."""
        needle = text.encode()
        await _until(lambda: self.out.find(needle, self.mark) >= 0, within, f"{text!r} in {bytes(self.out[-300:])!r}")
        found = self.out.find(needle, self.mark)
        before = self.out[self.mark : found].decode(errors="replace")
        self.mark = found + len(needle)
        return before


def fake_programs(
    bin_dir: Path, calls: Path, monkeypatch: pytest.MonkeyPatch | None = None, networkctl_exit: int = 0
) -> dict[str, str]:
    """systemctl and networkctl first on PATH, each recording `name args` in `calls`: the real ones need systemd
    (PID 1 here is not systemd, and networkd does not run); the environment to run a daemon with them."""
    bin_dir.mkdir(exist_ok=True)
    for name, code in (("systemctl", 0), ("networkctl", networkctl_exit)):
        program = bin_dir / name
        program.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\nexit {code}\n')
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
    path = f"{bin_dir}:{os.environ['PATH']}"
    if monkeypatch is not None:
        monkeypatch.setenv("PATH", path)
    return {"PATH": path}


@pytest.fixture
async def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Box]:
    fake_programs(tmp_path / "bin", tmp_path / "calls", monkeypatch)
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    config.web.https_port = 0
    config.console.tech_pin_hash = PIN_HASH
    (tmp_path / "classbox.toml").write_text("")
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    opened = Box(config, bus, tmp_path / "classbox.toml")
    await asyncio.to_thread(opened.open)
    yield opened
    await opened.network.close()
    await asyncio.to_thread(opened.close)


async def _session(
    box: Box, gate: PinGate | None = None, idle_s: float | None = None
) -> tuple[Terminal, asyncio.Task[None]]:
    terminal = Terminal()
    session = Session(box, terminal.transport, gate or PinGate(), where="test", idle_s=idle_s)
    session.wrong_pin_delay_s = session.locked_delay_s = 0.0
    return terminal, asyncio.create_task(serve(session), name="console-session")


async def _end(terminal: Terminal, task: asyncio.Task[None]) -> None:
    terminal.type(b"")  # the terminal goes away: the session ends by itself
    await asyncio.wait_for(task, 5)


async def test_wrong_pins_lock_the_terminal_out_even_for_the_right_pin(box: Box) -> None:
    terminal, task = await _session(box, PinGate(per_address=3, window_s=60.0))
    await terminal.expect("Technician PIN: ")
    for _ in range(3):
        terminal.type(b"1111\r")
        await terminal.expect("wrong PIN")
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect("too many wrong PINs from this address")
    assert "Logged in" not in terminal.out.decode()
    await _end(terminal, task)


async def test_idle_logout_brings_the_banner_back(box: Box) -> None:
    terminal, task = await _session(box, idle_s=0.3)
    await terminal.expect("Technician PIN: ")
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect("classbox> ")
    await terminal.expect("Logged out: no key pressed")
    await terminal.expect("Technician PIN: ")  # back to the banner and login
    await _end(terminal, task)


async def test_offline_commands_say_what_needs_the_daemon_and_run_the_configured_programs(
    box: Box, tmp_path: Path
) -> None:
    terminal, task = await _session(box)
    await terminal.expect("box software not running (offline console)")
    await terminal.expect("Technician PIN: ")
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect("classbox> ")
    for command in (b"lesson stop", b"sync now", b"devices test"):
        terminal.type(command + b"\r")
        await terminal.expect("The box software is not running")
    terminal.type(b"reboot\r")
    await terminal.expect("Type reboot to confirm: ")
    terminal.type(b"no\r")
    await terminal.expect("Nothing done.")
    assert not (tmp_path / "calls").exists()
    terminal.type(b"reboot\r")
    await terminal.expect("Type reboot to confirm: ")
    terminal.type(b"reboot\r")
    await terminal.expect("Rebooting.")
    await terminal.expect("classbox> ")
    assert (tmp_path / "calls").read_text() == "systemctl reboot\n"
    terminal.type(b"restart\r")
    await asyncio.wait_for(task, 10)  # the offline console ends: the next one reaches the started daemon
    assert (tmp_path / "calls").read_text().splitlines()[-1] == "systemctl restart classbox.service"


async def test_config_set_is_validated_saved_and_kept_in_the_history(box: Box) -> None:
    terminal, task = await _session(box)
    await terminal.expect("Technician PIN: ")
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect("classbox> ")
    terminal.type(b"config set web.port 99999\r")
    assert "Not done: web.port" in await terminal.expect("classbox> ")
    terminal.type(b"config set box.room B12\r")
    assert "Saved (version" in await terminal.expect("classbox> ")
    terminal.type(b"config get console.tech_pin_hash\r")
    shown = await terminal.expect("classbox> ")
    assert "(secret, not shown)" in shown
    assert "argon2" not in shown
    terminal.type(b"config set console.tech_pin_hash x\r")
    assert "a secret" in await terminal.expect("classbox> ")
    assert box.settings.path is not None
    assert 'room = "B12"' in box.settings.path.read_text()
    assert [v["note"] for v in box.settings.history.versions()][0] == "console:box.room"
    await _end(terminal, task)


async def test_tab_completes_commands_and_subcommands(box: Box) -> None:
    terminal, task = await _session(box)
    await terminal.expect("Technician PIN: ")
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect("classbox> ")
    terminal.type(b"sy\t")
    await terminal.expect("sync ")
    terminal.type(b"st\t")
    await terminal.expect("status ")
    terminal.type(b"\x15re\t")
    await terminal.expect("reboot  restart")  # two candidates are listed
    await _end(terminal, task)


async def test_factory_reset_wipes_data_and_secrets_and_keeps_the_os_settings(box: Box, tmp_path: Path) -> None:
    (box.config.box.state_dir / "recordings").mkdir()
    (box.config.box.state_dir / "recordings" / "lesson.mp4").write_bytes(b"x")
    box.set_setting("console.serial_port", "/dev/ttyS0", "test")
    terminal, task = await _session(box)
    await terminal.expect("Technician PIN: ")
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect("classbox> ")
    terminal.type(b"factory-reset\r")
    await terminal.expect("to confirm: ")
    terminal.type(b"erase " + box.config.box.name.encode() + b"\r")
    await asyncio.wait_for(task, 10)
    assert list(box.config.box.state_dir.iterdir()) == []
    assert box.settings.path is not None
    saved = box.settings.path.read_text()
    assert "argon2" not in saved
    assert 'serial_port = "/dev/ttyS0"' in saved
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("classbox")))
    assert left == ["classbox.toml"]


# -- network changes against a directory root -----------------------------------------------------------------


def _section(tmp_path: Path) -> ConsoleSection:
    # model_construct: the schema's shortest time-out is 5 s; the test shrinks it
    return ConsoleSection.model_construct(network_dir=str(tmp_path / "network"), net_confirm_s=0.5)


def test_parse_wanted_accepts_dhcp_and_static_and_refuses_the_rest() -> None:
    known = ["eth0"]
    assert parse_wanted(["eth0", "dhcp"], known) == Wanted("eth0", dhcp=True)
    wanted = parse_wanted(
        ["eth0", "static", "192.168.1.20/24", "gateway", "192.168.1.1", "dns", "1.1.1.1,9.9.9.9"], known
    )
    assert "Address=192.168.1.20/24\nGateway=192.168.1.1\nDNS=1.1.1.1\nDNS=9.9.9.9\n" in wanted.network_file()
    refused = (
        ["eth9", "dhcp"],
        ["eth0", "static", "192.168.1.20"],
        ["eth0", "static", "1.2.3.4/24", "gateway"],
        ["eth0", "static", "1.2.3.4/24", "via", "1.2.3.1"],
        ["eth0", "static", "300.1.1.1/24"],
        ["eth0"],
    )
    for bad in refused:
        with pytest.raises(NetworkError):
            parse_wanted(bad, known)


async def test_an_unconfirmed_change_is_undone_and_a_confirmed_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_programs(tmp_path / "bin", tmp_path / "calls", monkeypatch)
    iface = addresses()[0][0]
    network = Network(lambda: _section(tmp_path), settle_s=0.1)
    path = network.path(iface)
    path.parent.mkdir()
    path.write_text("[Match]\nName=before\n")
    await network.apply(Wanted(iface, dhcp=True))
    assert "DHCP=yes" in path.read_text()
    await _until(lambda: bool(network.last_rollback), 5.0, "the rollback")
    assert path.read_text() == "[Match]\nName=before\n"
    assert network.last_rollback == "not confirmed in time"
    await network.apply(Wanted(iface, dhcp=True))
    network.confirm()
    await asyncio.sleep(0.7)  # past the time-out: nothing may undo a confirmed change
    assert "DHCP=yes" in path.read_text()
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[:2] == ["networkctl reload", f"networkctl reconfigure {iface}"]
    assert len(calls) == 6
    await network.close()


async def test_a_change_networkd_refuses_is_rolled_back_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_programs(tmp_path / "bin", tmp_path / "calls", monkeypatch, networkctl_exit=1)
    network = Network(lambda: _section(tmp_path))
    iface = interfaces()[0]
    with pytest.raises(NetworkError):
        await network.apply(Wanted(iface, dhcp=True))
    assert not network.path(iface).exists()
    assert network.pending is None
    await network.close()


async def test_unprivileged_the_change_is_left_to_the_system_and_still_undone_unless_confirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_programs(tmp_path / "bin", tmp_path / "calls", monkeypatch, networkctl_exit=1)  # polkit says no
    monkeypatch.setattr(network_module.os, "geteuid", lambda: 999)  # the box image's `classbox` user
    network = Network(lambda: _section(tmp_path))
    iface = interfaces()[0]
    await network.apply(Wanted(iface, dhcp=True))  # the image's path unit reloads networkd
    assert network.path(iface).exists()
    assert network.pending is not None
    assert await network.undo()
    assert not network.path(iface).exists()
    await network.close()


async def test_lesson_schedule_shows_today_the_next_join_link_and_what_tomorrow_lacks(box: Box) -> None:
    zone = dt.timezone(dt.timedelta(hours=5))  # the school's zone, e.g. Tashkent or Karachi
    box.config.box.time_zone = "Etc/GMT-5"
    now = dt.datetime(2027, 1, 4, 8, 0, tzinfo=zone).timestamp()
    box.clock = Clock(lambda: now, lambda: now, lambda: True)
    box.add_timetable_lesson("Fractions", dt.datetime(2027, 1, 4, 9, 0, tzinfo=zone), 45)
    box.add_timetable_lesson("Geometry", dt.datetime(2027, 1, 5, 10, 0, tzinfo=zone), 45, course="maths-7")
    box = in_daemon(box, lambda: None)  # inside the daemon: the lesson commands answer
    terminal, task = await _session(box)
    terminal.type(PIN.encode() + b"\r")
    await terminal.expect(PROMPT)
    terminal.type(b"lesson schedule\r")
    await terminal.expect("09:00-09:45  Fractions  [Planned]")
    await terminal.expect("Fractions: Starts at 09:00")
    await terminal.expect("/watch/")  # the join link to share ahead of time
    await terminal.expect("Not yet on the box for tomorrow")
    await terminal.expect("Geometry (maths-7): the course is not in the repository")
    await _end(terminal, task)


async def test_the_console_speaks_the_box_language(box: Box) -> None:
    box.config.box.language = "fr"
    terminal, task = await _session(box)
    terminal.type(b"1111\r")
    await terminal.expect("code PIN erroné")
    await _end(terminal, task)


@pytest.mark.parametrize("language", ["ar", "ur", "km"])
async def test_the_console_speaks_english_where_a_terminal_cannot_draw_the_box_language(
    box: Box, language: str
) -> None:
    box.config.box.language = language  # right to left or shaped: a serial terminal would garble it
    terminal, task = await _session(box)
    terminal.type(b"1111\r")
    await terminal.expect("wrong PIN")
    await _end(terminal, task)


class NoComponents:
    """What a daemon's supervisor reports when nothing is wired in (the wipe's ordering is what is tested)."""

    def report(self) -> dict[str, dict[str, object]]:
        return {}


def in_daemon(box: Box, restart: Callable[[], None]) -> Box:
    """`box`'s kernel as the daemon hands it to its Box: with a supervisor's reports and a way to restart."""
    return Box(
        box.config, box.bus, box.settings.path, services=box.services, supervisor=NoComponents(), restart=restart
    )


async def test_inside_the_daemon_the_wipe_waits_until_everything_has_stopped(box: Box) -> None:
    restarts: list[str] = []
    box = in_daemon(box, lambda: restarts.append("restart"))
    kept = box.config.box.state_dir / "box.db"
    box.factory_reset("console")
    assert restarts == ["restart"]
    assert await asyncio.to_thread(kept.exists)  # the components still run on it
    await asyncio.to_thread(box.close)  # what the daemon does once every component stopped
    assert await asyncio.to_thread(lambda: list(box.config.box.state_dir.iterdir())) == []
