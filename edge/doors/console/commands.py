"""The console's commands (status, devices, net, logs, sync, lesson, config, restart, reboot, factory-reset, diag),
each with its help and completion, and the session's flow: banner, login, commands, again.

Each command calls the service layer only; what needs the daemon (lessons, sync, live device tests)
says plainly that the box software is not running when the console runs offline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import __version__
from edge.core.component import ComponentHealth
from edge.core.errors import DOOR_ERRORS, ClassboxError, NoLiveLesson, door_meaning
from edge.core.texts import N_
from edge.doors.console.engine import CTRL_C, MAX_LINE, Disconnected, Session
from edge.system import doctor
from edge.system.network import NetworkError, interfaces, parse_wanted
from edge.system.settings import SettingsRefused, is_secret

log = logging.getLogger(__name__)

FOLLOW_POLL_S = 0.25
FPS_SAMPLE_S = 2.0
LOG_LINES = 20
NOT_RUNNING = N_("The box software is not running: %(what)s needs it. `restart` starts it.")
BY = "console"
REBOOT = ["systemctl", "reboot"]  # found on PATH
START = ["systemctl", "restart", "classbox.service"]  # the offline console starts the box software

# What a command may refuse with: the error map's classes, and the console's own (refused input, network).
REFUSALS: tuple[type[Exception], ...] = (*DOOR_ERRORS, NetworkError, SettingsRefused, KeyError, ValueError)


@dataclass(frozen=True)
class Command:
    """A console command: its words of help, its subcommands (for Tab) and what it does."""

    name: str
    help: str
    usage: str
    subcommands: tuple[str, ...]
    run: Callable[[Shell, list[str]], Awaitable[None]]


async def serve(session: Session) -> None:
    """Banner, login, commands, again after each logout, until the terminal goes away."""
    try:
        while True:
            await session.banner()
            if await session.login():
                await Shell(session).run()
    except (Disconnected, OSError):
        log.info("console (%s): the terminal went away", session.where)


class Shell:
    """The commands of one logged-in session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.box = session.box

    async def run(self) -> None:
        """Read and run commands until logout, Ctrl-D or the idle time-out."""
        await self.s.say(N_("Logged in. `help` lists the commands."))
        while True:
            try:
                event = await self.s.ask(PROMPT_TEXT, complete=self.complete)
            except TimeoutError:
                await self.s.say(
                    N_("Logged out: no key pressed for %(minutes)s minutes."), minutes=_minutes(self.s.idle_s)
                )
                return
            if event.kind == "eof":
                await self.s.say(N_("Logged out."))
                return
            if event.kind == "refused":
                await self.s.say(event.text, max=MAX_LINE, baud=self.box.config.console.baudrate)
            elif event.kind == "line" and event.text.strip() and not await self.execute(event.text):
                return

    async def execute(self, text: str) -> bool:
        """Run one command line; False when it logs out."""
        try:
            words = shlex.split(text)
        except ValueError:
            await self.s.say(N_("Unbalanced quotes: nothing done."))
            return True
        name, args = words[0].lower(), words[1:]
        if name in ("logout", "exit", "quit"):
            await self.s.say(N_("Logged out."))
            return False
        command = COMMANDS.get(name)
        if command is None:
            await self.s.say(N_("Unknown command %(name)s: `help` lists the commands."), name=name[:40])
            return True
        try:
            await command.run(self, args)
        except REFUSALS as err:
            await self.s.say(N_("Not done: %(reason)s"), reason=self._reason(err))
        return True

    def _reason(self, err: Exception) -> str:
        if isinstance(err, SettingsRefused):
            return "; ".join(f"{e['loc']}: {self.s.words(e['msg'])}" for e in err.errors)
        meaning = door_meaning(err)  # the map's words for our errors and sync's, as the web doors answer them
        if meaning is not None and meaning.message:
            return self.s.words(meaning.message)
        text = str(err.args[0]) if err.args else type(err).__name__
        return self.s.words(text)

    def complete(self, typed: str) -> list[str]:
        """What Tab may finish `typed` with: a command name, then its subcommands."""
        words = typed.split(" ")
        if len(words) == 1:
            return sorted(name for name in [*COMMANDS, "logout"] if name.startswith(words[0].lower()))
        command = COMMANDS.get(words[0].lower())
        if command is None or len(words) > 2:
            return []
        return [sub for sub in command.subcommands if sub.startswith(words[1])]

    async def needs_daemon(self, what: str) -> bool:
        """Say that `what` needs the box software and return True when it is not running."""
        if self.box.running():
            return False
        await self.s.say(NOT_RUNNING, what=what)
        return True

    async def follow(self, lines: Callable[[], Awaitable[list[str]]]) -> None:
        """Print what `lines` gives every quarter second until Ctrl-C (or Ctrl-D)."""
        await self.s.say(N_("Following; Ctrl-C stops."))
        while True:
            for text in await lines():
                await self.s.line(text)
            try:
                data = await self.s.read(FOLLOW_POLL_S)
            except TimeoutError:
                continue
            if CTRL_C in data or b"\x04" in data:
                await self.s.raw("^C\n")
                return


PROMPT_TEXT = "classbox> "


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}" if seconds >= 60 else f"{seconds / 60:.1f}"


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


# -- help and status ----------------------------------------------------------------------------------------


async def cmd_help(shell: Shell, args: list[str]) -> None:
    """The commands, or one command's usage."""
    if args and args[0] in COMMANDS:
        command = COMMANDS[args[0]]
        await shell.s.line(command.usage)
        await shell.s.say(command.help)
        return
    for command in COMMANDS.values():
        await shell.s.line(f"{command.name:<14}{shell.s.words(command.help)}")
    await shell.s.line(f"{'logout':<14}{shell.s.words(N_('End the session (also Ctrl-D).'))}")


async def cmd_status(shell: Shell, args: list[str]) -> None:
    """The overall state, the lesson, the alarms and the doctor's findings."""
    box, s = shell.box, shell.s
    health = box.health()
    if box.running():
        await s.say(
            N_("State: %(state)s; up for %(minutes)s minutes"),
            state=health.status,
            minutes=_minutes(health.uptime_s),
        )
    else:
        await s.say(N_("State: box software not running (offline console)"))
    lesson = health.lesson
    if lesson:
        await s.say(N_("Lesson: %(title)s, live since %(since)s"), title=lesson.title, since=_when(lesson.started_at))
    else:
        await s.say(N_("Lesson: none"))
    for message in health.alarms.values():
        await s.say(N_("Alarm: %(alarm)s"), alarm=s.words(message))
    await print_findings(shell)


async def cmd_doctor(shell: Shell, args: list[str]) -> None:
    """The doctor's findings (what `classbox doctor` prints)."""
    await print_findings(shell)


async def print_findings(shell: Shell) -> None:
    """The doctor's findings, or that nothing is wrong."""
    found = await shell.box.doctor()
    lines = doctor.report_lines(found, shell.s.words)
    for text in lines or [shell.s.words(doctor.NOTHING_WRONG)]:
        await shell.s.line(text)


# -- devices ----------------------------------------------------------------------------------------------


async def cmd_devices(shell: Shell, args: list[str]) -> None:
    """The configured cameras and microphones with their state; `devices test` measures fps and sound level."""
    if args and args[0] == "test":
        await devices_test(shell)
        return
    box, s = shell.box, shell.s
    components = box.health().components
    for kind, items in (("camera", box.config.cameras), ("mic", box.config.microphones)):
        for item in items:
            report = components.of(f"{kind}:{item.name}")
            state = (report.status if report else "-") if box.running() else s.words(N_("not running"))
            detail = report.detail if report else ""
            await s.line(f"{kind:<7}{item.name:<14}{item.source:<10}{state:<10}{detail}"[:79])
    found = await box.devices()
    names = [c.get("name") or c.get("device") or "?" for c in found["cameras"]]
    await s.say(N_("Cameras found on this machine: %(names)s"), names=", ".join(map(str, names)) or "-")
    mics = [m.get("name", "?") for m in found["microphones"]]
    await s.say(N_("Microphones found on this machine: %(names)s"), names=", ".join(map(str, mics)) or "-")


def _delivered(camera: ComponentHealth | None) -> int:
    """The frames a camera's capture has delivered so far (0 without a report)."""
    return int((camera.metric("delivered") if camera else None) or 0)


async def devices_test(shell: Shell) -> None:
    """Each camera's frames per second over two seconds and each microphone's level, as the daemon gets them."""
    if await shell.needs_daemon("devices test"):
        return
    box, s = shell.box, shell.s
    await s.say(N_("Measuring for %(seconds)s seconds; Ctrl-C stops."), seconds=f"{FPS_SAMPLE_S:.0f}")
    before = box.health().components
    try:
        await s.read(FPS_SAMPLE_S)
    except TimeoutError:
        pass
    else:
        await s.say(N_("Stopped."))
        return
    after = box.health().components
    for camera in box.config.cameras:
        now, then = after.camera(camera.name), before.camera(camera.name)
        frames = _delivered(now) - _delivered(then)
        status = now.status if now else "-"
        await s.say(
            N_("Camera %(name)s: %(fps)s frames per second (%(status)s)"),
            name=camera.name,
            fps=f"{frames / FPS_SAMPLE_S:.1f}",
            status=status,
        )
    for mic in box.config.microphones:
        try:
            level = box.microphone_level(mic.name)
        except ClassboxError:
            continue
        rms = level.get("rms_dbfs")
        shown = f"{rms:.1f}" if isinstance(rms, int | float) else "-"
        await s.say(
            N_("Microphone %(name)s: level %(level)s dBFS (%(status)s)"),
            name=mic.name,
            level=shown,
            status=level["status"],
        )


# -- network ----------------------------------------------------------------------------------------------


async def cmd_net(shell: Shell, args: list[str]) -> None:
    """Show the network; `net set` writes systemd-networkd settings, undone unless `net confirm`ed in time."""
    box, s = shell.box, shell.s
    sub = args[0] if args else "show"
    if sub == "set":
        seconds = await box.set_network(parse_wanted(args[1:], interfaces()))
        await s.say(
            N_("Applied. Check that the box answers, then type `net confirm` within %(seconds)s s, or it is undone."),
            seconds=f"{seconds:.0f}",
        )
    elif sub == "confirm":
        wanted = box.confirm_network()
        await s.say(N_("Kept the new settings of %(interface)s."), interface=wanted.interface)
    elif sub == "undo":
        done = await box.undo_network()
        await s.say(N_("The previous settings are back.") if done else N_("No change is waiting to be confirmed."))
    elif sub == "show":
        await net_show(shell)
    else:
        await s.line(COMMANDS["net"].usage)


async def net_show(shell: Shell) -> None:
    """Addresses, gateways, name servers and the change waiting to be confirmed."""
    shown, s = shell.box.network_status(), shell.s
    for iface in shown.interfaces:
        found = [address for name, address in shown.addresses if name == iface] or ["-"]
        await s.line(f"{iface:<12}{', '.join(found)}")
    gateways = ", ".join(f"{gw} ({iface})" for iface, gw in shown.gateways) or "-"
    await s.say(N_("Gateway: %(gateways)s"), gateways=gateways)
    await s.say(N_("Name servers: %(servers)s"), servers=", ".join(shown.dns) or "-")
    if shown.pending:
        await s.say(N_("Waiting for `net confirm`:"))
        await s.raw(shown.pending)
    if shown.last_rollback:
        await s.say(N_("The last change was undone: %(reason)s"), reason=shown.last_rollback)


# -- logs -------------------------------------------------------------------------------------------------


def _log_text(line: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(line["at"]))
    return f"{stamp} {line['level'][:4].upper():<4} {line['name']}: {line['message']}"  # wrapped at 80 when shown


async def cmd_logs(shell: Shell, args: list[str]) -> None:
    """The last lines of the log (`logs 50`), or `logs follow` until Ctrl-C."""
    if args and args[0] == "follow":
        await logs_follow(shell)
        return
    count = int(args[0]) if args and args[0].isdigit() else LOG_LINES
    if not shell.box.running():
        for text in await journal_tail(min(count, 500)):
            await shell.s.line(text)
        await shell.s.say(N_("This console's own log:"))
    for line in shell.box.log_lines(limit=min(count, 500)):
        await shell.s.line(_log_text(line))


async def logs_follow(shell: Shell) -> None:
    """New log lines as they come, until Ctrl-C."""
    if not shell.box.running():
        await shell.s.say(NOT_RUNNING, what="logs follow")
        return
    box = shell.box
    seen: list[dict[str, Any]] = box.log_lines(limit=1)

    async def new_lines() -> list[str]:
        lines = box.log_lines(limit=None)
        last = seen[-1] if seen else None
        start = next((i + 1 for i in range(len(lines) - 1, -1, -1) if lines[i] is last), 0)
        fresh = lines[start:]
        if fresh:
            seen[:] = fresh[-1:]
        return [_log_text(line) for line in fresh]

    await shell.follow(new_lines)


async def journal_tail(count: int) -> list[str]:
    """The box software's last log lines from the journal (offline console), or why there are none."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "journalctl", "-u", "classbox.service", "-n", str(count), "--no-pager", "-o", "short",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with asyncio.timeout(10.0):
            out, _ = await proc.communicate()
    except (OSError, TimeoutError):
        return ["(the journal cannot be read here)"]
    return out.decode(errors="replace").splitlines() or ["(no log lines)"]


# -- sync and lesson --------------------------------------------------------------------------------------


async def cmd_sync(shell: Shell, args: list[str]) -> None:
    """Courseware and upload state; `sync now` pulls at once; `sync pause` / `sync resume` the scheduled pulls."""
    if await shell.needs_daemon("sync"):
        return
    box, s = shell.box, shell.s
    sub = args[0] if args else "status"
    if sub == "now":
        box.pull_courseware()
        await s.say(N_("Courseware pull asked for."))
    elif sub in ("pause", "resume"):
        box.pause_sync(sub == "pause", BY)
        await s.say(
            N_("Scheduled sync paused (`sync resume` resumes it).") if sub == "pause" else N_("Scheduled sync resumed.")
        )
    else:
        state = box.sync_status()
        await s.say(
            N_("Courseware: last pull %(at)s; paused: %(paused)s"),
            at=_when(state["last_attempt_at"]),
            paused=s.words(N_("yes") if state["paused"] else N_("no")),
        )
        if state["error"]:
            await s.say(N_("Last problem: %(error)s"), error=state["error"])
        uploads = state["uploads"]
        await s.say(
            N_("Uploads waiting: %(count)s (%(mb)s MB)"),
            count=uploads["upload_queue"],
            mb=f"{uploads['upload_bytes_pending'] / 1e6:.1f}",
        )


async def cmd_lesson(shell: Shell, args: list[str]) -> None:
    """The live lesson; `lesson stop` ends it; `lesson schedule` shows today's timetable and what tomorrow lacks."""
    if await shell.needs_daemon("lesson"):
        return
    box, s = shell.box, shell.s
    lesson = box.current_lesson()
    if args and args[0] == "schedule":
        await _schedule(shell)
    elif args and args[0] == "stop":
        if lesson is None:
            raise NoLiveLesson(N_("no lesson is live"))
        ended = await box.stop_lesson(by=BY)
        await s.say(N_("Lesson %(title)s stopped."), title=ended.title)
    elif lesson is None:
        await s.say(N_("Lesson: none"))
    else:
        await s.say(
            N_("Lesson: %(title)s, live since %(since)s, %(viewers)s watching"),
            title=lesson.title,
            since=_when(lesson.started_at),
            viewers=len(box.viewers()),
        )


LESSON_STATES = {
    "planned": N_("Planned"),
    "soon": N_("Starting soon"),
    "due": N_("Starting"),
    "live": N_("Live now"),
    "ended": N_("Ended"),
    "missed": N_("Not held"),
}


async def _schedule(shell: Shell) -> None:
    """Today's lessons with their state, the next one's join link, and what tomorrow's lessons still lack."""
    box, s = shell.box, shell.s
    zone = box.school_zone()

    def clock(at: float) -> str:
        return dt.datetime.fromtimestamp(at, zone).strftime("%H:%M")

    lessons = box.timetable_today()
    await s.line(f"{s.words(N_('Today'))} ({zone})")
    if not lessons:
        await s.say(N_("No lessons scheduled today"))
    for item in lessons:
        state = s.words(LESSON_STATES.get(item.state, item.state))
        await s.line(f"  {clock(item.start)}-{clock(item.end)}  {item.title}  [{state}]")
    upcoming = box.next_scheduled_lesson()
    if upcoming is not None:
        starts = s.words(N_("Starts at {time}")).format(time=clock(upcoming.start))
        await s.line(f"{upcoming.title}: {starts}  {upcoming.join_url}")
    missing = await box.timetable_missing()
    if not missing:
        await s.say(N_("Everything tomorrow's lessons need is here"))
        return
    await s.say(N_("Not yet on the box for tomorrow"))
    for entry in missing:
        what = s.words(N_("the course is not in the repository")) if entry.unknown else ", ".join(entry.items)
        await s.line("  " + s.words(N_("{lesson} ({course}): {what}")).format(**entry.to_json(), what=what))


# -- config -----------------------------------------------------------------------------------------------


async def cmd_config(shell: Shell, args: list[str]) -> None:
    """`config get KEY` (secrets are not shown) or `config set KEY VALUE`, saved as the admin page saves."""
    box, s = shell.box, shell.s
    if len(args) >= 2 and args[0] == "get":
        value = box.setting(args[1])
        shown = (
            "(secret, not shown)" if is_secret(args[1].rsplit(".", 1)[-1]) else json.dumps(value, ensure_ascii=False)
        )
        await s.line(f"{args[1]} = {shown}")
    elif len(args) >= 3 and args[0] == "set":
        saved = box.set_setting(args[1], " ".join(args[2:]), BY)
        if not saved["changed"]:
            await s.say(N_("Nothing changed."))
            return
        await s.say(N_("Saved (version %(version)s)."), version=saved["version"])
        if saved["restart_needed"]:
            await s.say(N_("Takes effect after `restart`: %(paths)s"), paths=", ".join(saved["restart_for"]))
    else:
        await s.line(COMMANDS["config"].usage)


# -- restart, reboot, factory reset, diagnostics ------------------------------------------------------------


async def cmd_restart(shell: Shell, args: list[str]) -> None:
    """Restart the box software (everything stops in order and starts again)."""
    if shell.box.running():
        await shell.s.say(N_("Restarting the box software; the console comes back in a moment."))
        shell.box.restart(BY)
        return
    if await run_command(shell, START, N_("Starting the box software.")):
        raise Disconnected("restart")  # this offline console ends; the next one reaches the daemon


async def cmd_reboot(shell: Shell, args: list[str]) -> None:
    """Reboot the whole box (typed confirmation)."""
    if not await shell.s.confirm(N_("Reboot the box? Lessons and the console stop."), "reboot"):
        await shell.s.say(N_("Nothing done."))
        return
    log.warning("reboot asked for from the console")
    await run_command(shell, REBOOT, N_("Rebooting."))


async def cmd_factory_reset(shell: Shell, args: list[str]) -> None:
    """Wipe secrets and data, keep the OS (typed confirmation)."""
    box = shell.box
    asked = N_("Factory reset: deletes recordings, courseware, accounts, PINs and settings; keeps the OS.")
    if not await shell.s.confirm(asked, "erase " + box.config.box.name):
        await shell.s.say(N_("Nothing done."))
        return
    running = box.running()
    await shell.s.say(N_("Erasing; the box software starts again as new."))
    box.factory_reset(BY)
    if not running:
        await run_command(shell, START, N_("Starting the box software."))
        raise Disconnected("factory reset")  # the session's box is closed: this console starts again


async def run_command(shell: Shell, argv: list[str], saying: str) -> bool:
    """Run one of the configured system commands (restart, reboot); True when it worked, else says so."""
    await shell.s.say(saying)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(30.0):
            code = await proc.wait()
    except (OSError, TimeoutError, ValueError):
        code = -1
    if code != 0:
        await shell.s.say(N_("That did not work (%(command)s)."), command=" ".join(argv)[:60])
    return code == 0


async def cmd_diag(shell: Shell, args: list[str]) -> None:
    """A printed summary, or `diag PATH`: the diagnostics bundle written to a mounted USB stick's folder."""
    box, s = shell.box, shell.s
    if args:
        folder = Path(args[0])
        if not await asyncio.to_thread(folder.is_dir):
            await s.say(N_("No folder %(path)s: mount the USB stick first (e.g. /media/usb)."), path=args[0][:60])
            return
        target = folder / f"classbox-diag-{box.id}-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        data = await asyncio.to_thread(box.diagnostics)
        await asyncio.to_thread(_write_bundle, target, data)
        await s.say(N_("Diagnostics written to %(path)s (%(kb)s KB)."), path=str(target), kb=len(data) // 1024)
        return
    health = box.health()
    await s.line(f"classbox {__version__}, box {box.id} ({box.config.box.name})")
    await s.say(
        N_("State: %(state)s"),
        state=health.status if box.running() else s.words(N_("box software not running (offline console)")),
    )
    for name, report in health.components.items():
        await s.line(f"  {name:<20}{report.status:<10}{report.detail[:48]}")
    await print_findings(shell)


def _write_bundle(target: Path, data: bytes) -> None:
    with target.open("wb") as out:  # a FAT stick: no atomic rename worth having, but fsync before the stick is pulled
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", N_("List the commands; `help COMMAND` for one."), "help [COMMAND]", (), cmd_help),
        Command("status", N_("The box's state, the lesson, alarms and what needs fixing."), "status", (), cmd_status),
        Command("doctor", N_("What is wrong with the box, and the fix for each."), "doctor", (), cmd_doctor),
        Command(
            "devices",
            N_("Cameras and microphones; `devices test` measures them live."),
            "devices [test]",
            ("test",),
            cmd_devices,
        ),
        Command(
            "net",
            N_("Network: show; set static or DHCP (undone unless confirmed)."),
            "net [show | set IFACE dhcp | set IFACE static ADDRESS/PREFIX [gateway GW] [dns A,B] | confirm | undo]",
            ("show", "set", "confirm", "undo"),
            cmd_net,
        ),
        Command(
            "logs",
            N_("The last log lines; `logs follow` until Ctrl-C."),
            "logs [COUNT | follow]",
            ("follow",),
            cmd_logs,
        ),
        Command(
            "sync",
            N_("Courseware and uploads: status, now, pause, resume."),
            "sync [status | now | pause | resume]",
            ("status", "now", "pause", "resume"),
            cmd_sync,
        ),
        Command(
            "lesson",
            N_("The live lesson and today's timetable: status, stop, schedule."),
            "lesson [status | stop | schedule]",
            ("status", "stop", "schedule"),
            cmd_lesson,
        ),
        Command(
            "config",
            N_("Settings: `config get KEY`, `config set KEY VALUE`."),
            "config get KEY | config set KEY VALUE",
            ("get", "set"),
            cmd_config,
        ),
        Command("restart", N_("Restart the box software."), "restart", (), cmd_restart),
        Command("reboot", N_("Reboot the box (asks first)."), "reboot", (), cmd_reboot),
        Command(
            "factory-reset",
            N_("Erase data and secrets, keep the OS (asks first)."),
            "factory-reset",
            (),
            cmd_factory_reset,
        ),
        Command(
            "diag",
            N_("Diagnostics: a summary, or `diag PATH` writes the bundle to a USB stick."),
            "diag [PATH]",
            (),
            cmd_diag,
        ),
    )
}
