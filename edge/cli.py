"""`classbox run|demo|config ...`: the command line of the box.

Each command imports what it needs when it runs (the daemon brings media, WebRTC and the web doors),
so `--help`, `--version` and the config tools answer at once, also on a busy box.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge import __version__
from edge.core.config import BoxConfig, config_path, load_config, save_config
from edge.core.errors import ConfigError
from edge.core.logs import setup_logging
from edge.demo import prepare_demo_board, prepare_demo_courseware

log = logging.getLogger("classbox")

EXIT_CONFIG = 2
EXIT_RESTART = 75  # EX_TEMPFAIL: under systemd (Restart=always) the unit comes back up; elsewhere we exec ourselves
Handler = Callable[[argparse.Namespace], int]
DEMO_CONFIG = "classbox.toml"  # where a demo without --config saves the admin page's changes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classbox", description="The classroom box daemon and its tools.")
    parser.add_argument("--version", action="version", version=f"classbox {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the box daemon", description="Run the box daemon with its config file.")
    run.add_argument(
        "--config",
        type=Path,
        help="config file (default: $CLASSBOX_CONFIG or /etc/classbox/classbox.toml); none yet: built-in defaults",
    )
    run.set_defaults(handler=_cmd_run)

    demo = commands.add_parser(
        "demo",
        help="run the box on synthetic devices",
        description="Run the box with a synthetic camera, "
        "microphone and board and local courseware: no hardware, nothing to configure.",
    )
    demo.add_argument("--config", type=Path, help="start from this config file instead of the built-in defaults")
    demo.add_argument("--state-dir", type=Path, help="keep state here (default: a temporary folder removed at exit)")
    demo.add_argument("--port", type=int, default=None, help="HTTP port (default 8080)")
    demo.add_argument("--host", default=None, help="address to listen on (default 0.0.0.0)")
    demo.add_argument(
        "--board",
        choices=("synthetic", "none"),
        default="synthetic",
        help="the board's pen input: synthetic writing (default) or none (only the board page draws)",
    )
    demo.add_argument("--https-port", type=int, default=None, help="HTTPS port (default 8443; 0 = off)")
    demo.add_argument("--fault", metavar="COMPONENT", help="drill: make COMPONENT fail once after start")
    demo.set_defaults(handler=_cmd_demo)

    config = commands.add_parser("config", help="check or change the config file", description="Config file tools.")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser(
        "check",
        help="validate a config file",
        description="Validate a config file; prints one line per problem and exits non-zero if there is any.",
    )
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_cmd_config_check)
    set_pin = _config_command(
        config_commands,
        "set-pin",
        _cmd_set_pin,
        help="set the teacher PIN",
        description="Set the teacher PIN (read from standard input, or prompted) and save the config atomically.",
    )
    set_pin.add_argument("--tech", action="store_true", help="set the technician PIN (the serial console's) instead")
    _admin_parser(commands)
    _config_command(
        commands,
        "doctor",
        _cmd_doctor,
        help="say what is wrong with the box, and how to fix it",
        description="Check devices, disk, clock, network, courseware freshness and the upload backlog from the "
        "config and the state on disk (no running daemon needed); exits 1 when something is wrong.",
    )
    _config_command(
        commands,
        "console",
        _cmd_console,
        help="the technician's console on this terminal",
        description="The serial console's commands on standard input/output: connected to the running box, "
        "or, when none answers, run here without it (offline).",
    )
    _config_command(
        commands,
        "first-boot",
        _cmd_first_boot,
        help="give a new box its id, HTTPS certificate and setup code",
        description="Write the box id into the config file (made if missing), make the HTTPS certificate and the "
        "admin setup code. The image runs it before the daemon; running it again changes nothing.",
    )
    publish = commands.add_parser(
        "publish",
        help="publish courseware as a signed repository",
        description="Turn SRC_DIR/<course>/... into a static, TUF-signed courseware repository in REPO_DIR "
        "(chunks, chunk indexes, metadata). Re-publishing adds only new chunks. Keys missing in KEYDIR are made.",
    )
    publish.add_argument("src", type=Path, metavar="SRC_DIR")
    publish.add_argument("repo", type=Path, metavar="REPO_DIR")
    publish.add_argument("--keys", type=Path, required=True, metavar="KEYDIR", help="one <role>.pem per TUF role")
    publish.add_argument("--timestamp-days", type=int, default=None, help="timestamp expiry in days (default 42)")
    publish.set_defaults(handler=_cmd_publish)
    return parser


def _config_command(commands: Any, name: str, handler: Handler, **words: str) -> argparse.ArgumentParser:
    """A command that reads the config file (`--config`, else the default) and runs `handler`; `words`: help."""
    command: argparse.ArgumentParser = commands.add_parser(name, **words)
    command.add_argument("--config", type=Path)
    command.set_defaults(handler=handler)
    return command


def _admin_parser(commands: Any) -> None:
    admin = commands.add_parser("admin", help="the admin page's credentials", description="Admin page tools.")
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    _config_command(
        actions,
        "setup-code",
        _cmd_setup_code,
        help="print the first-boot setup code",
        description="Print the one-time code that creates the first admin account (none once one exists).",
    )
    _config_command(
        actions,
        "fingerprint",
        _cmd_fingerprint,
        help="print the HTTPS certificate's fingerprint",
        description="Print the SHA-256 fingerprint of the box's HTTPS certificate, to compare with the browser's.",
    )


def _is_missing(path: Path) -> bool:
    """True when nothing is at `path` (first boot); a file we cannot read is not missing: loading it says why."""
    try:
        path.lstat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _load_for_run(path: Path | None) -> tuple[BoxConfig, str]:
    """The config to run and a note when it is the built-in defaults because there is no file yet."""
    resolved = config_path(path)
    note = ""
    if _is_missing(resolved):
        note = f"no config file at {resolved}: running on the built-in defaults"
        log.warning("%s", note)
        config = BoxConfig()
    else:
        config = load_config(resolved)
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state and "state_dir" not in config.box.model_fields_set:  # systemd's StateDirectory=, unless the file says
        config.box.state_dir = Path(state)
    return config, note


def _report(err: ConfigError) -> int:
    print(f"classbox: config refused: {err.source}", file=sys.stderr)
    for line in err.problems:
        print(f"  {line}", file=sys.stderr)
    return EXIT_CONFIG


def _serve(config: BoxConfig, fault: str | None = None, config_note: str = "", path: Path | None = None) -> int:
    from edge.daemon import Daemon  # the whole daemon: media, WebRTC, the web doors

    setup_logging(config.logging.level)
    daemon = Daemon(config, fault=fault, config_note=config_note, config_path=path)
    asyncio.run(daemon.run())
    return EXIT_RESTART if daemon.restart_requested else 0


def _cmd_run(args: argparse.Namespace) -> int:
    setup_logging()
    config, note = _load_for_run(args.config)
    return _serve(config, config_note=note, path=config_path(args.config))  # settings are saved where they are read


def _cmd_demo(args: argparse.Namespace) -> int:
    setup_logging()
    saved = args.state_dir / DEMO_CONFIG if args.state_dir is not None else None
    if args.config:
        config = load_config(args.config)
    elif saved is not None and saved.exists():  # what the admin page saved in an earlier demo run
        config = load_config(saved)
    else:
        config = BoxConfig()
    if args.port is not None:
        config.web.port = args.port
    if args.host is not None:
        config.web.host = args.host
    if args.https_port is not None:
        config.web.https_port = args.https_port
    prepare_demo_board(config, args.board)
    if args.state_dir is not None:
        config.box.state_dir = args.state_dir
        prepare_demo_courseware(config)
        return _serve(config, args.fault, path=args.config or args.state_dir / DEMO_CONFIG)
    with tempfile.TemporaryDirectory(prefix="classbox-demo-") as state:
        config.box.state_dir = Path(state)
        prepare_demo_courseware(config)
        print(f"classbox demo: http://localhost:{config.web.port}/  (state in {state})", file=sys.stderr)
        return _serve(config, args.fault, path=args.config or Path(state) / DEMO_CONFIG)


def _cmd_config_check(args: argparse.Namespace) -> int:
    from edge.media.devices import device_problems

    config = load_config(args.file)
    problems = device_problems(config)  # the form was checked at load; this looks for the devices themselves
    if problems:
        return _report(ConfigError(str(args.file), problems))
    print(f"{args.file}: ok")
    return 0


def _cmd_set_pin(args: argparse.Namespace) -> int:
    from edge.system.accounts import hash_pin

    path = config_path(args.config)
    config = load_config(path) if path.exists() else BoxConfig()
    who = "technician" if args.tech else "teacher"
    pin = getpass.getpass(f"New {who} PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    try:
        hashed = hash_pin(pin)
    except ValueError as err:
        print(f"classbox: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.tech:
        config.console.tech_pin_hash = hashed
    else:
        config.web.teacher_pin_hash = hashed
    save_config(config, path)
    print(f"{who} PIN saved in {path}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from edge.doors.web.i18n import translations
    from edge.system import doctor

    config, _ = _load_for_run(args.config)
    found = doctor.findings(doctor.gather(config))
    gettext = translations(config.box.language).gettext
    for line in doctor.report_lines(found, gettext) or [gettext(doctor.NOTHING_WRONG)]:
        print(line)
    return 1 if found else 0


def _cmd_console(args: argparse.Namespace) -> int:
    from edge.doors.console.door import console_main

    config, _ = _load_for_run(args.config)
    return console_main(config, config_path(args.config))


def _cmd_setup_code(args: argparse.Namespace) -> int:
    from edge.system.accounts import read_setup_code

    config, _ = _load_for_run(args.config)
    code = read_setup_code(config.box.state_dir)
    if code is None:
        print("classbox: no setup code: the box has an admin account (or has not started yet)", file=sys.stderr)
        return 1
    print(code)
    return 0


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    from edge.system.certificate import load_certificate

    config, _ = _load_for_run(args.config)
    certificate = load_certificate(config.box.state_dir)
    if certificate is None:
        print("classbox: no HTTPS certificate yet (the box makes it when it starts)", file=sys.stderr)
        return 1
    print(f"SHA-256 {certificate.fingerprint}")
    return 0


def _cmd_first_boot(args: argparse.Namespace) -> int:
    from edge.firstboot import first_boot

    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    done = first_boot(config_path(args.config), Path(state) if state else None)
    print(f"box id {done.box_id}" + (" (written to the config file)" if done.config_written else ""))
    print(f"HTTPS certificate SHA-256 {done.fingerprint}" if done.fingerprint else "HTTPS is off: no certificate")
    if done.setup_code_file is not None:  # the code itself never goes to the journal
        print(f"admin setup code in {done.setup_code_file} (`classbox admin setup-code`)")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from sync.errors import PublishError
    from sync.publish import publish, stderr_progress

    try:
        report = publish(args.src, args.repo, args.keys, progress=stderr_progress(), timestamp_days=args.timestamp_days)
    except (PublishError, OSError) as err:
        print(f"classbox publish: {err}", file=sys.stderr)
        return 1
    print(
        f"published version {report.version}: {report.courses} courses, {report.items} items, "
        f"{report.chunks_written} new chunks ({report.bytes_written} of {report.bytes_total} bytes written); "
        f"trusted root: {args.repo / 'metadata' / '1.root.json'}"
    )
    return 0


def _restart() -> None:
    """Start this command again in place (same process id, same arguments), all else stopped and closed."""
    log.warning("classbox restarting")
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `classbox` command."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as err:
        return _report(err)
    if code == EXIT_RESTART and argv is None and not os.environ.get("NOTIFY_SOCKET"):
        _restart()
    return code


if __name__ == "__main__":
    sys.exit(main())
