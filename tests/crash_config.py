"""A process that saves or rolls back a config and SIGKILLs itself at one of its file-system steps.

    python tests/crash_config.py count OP DIR       # runs OP on DIR, prints its steps as a JSON list
    python tests/crash_config.py kill OP DIR...     # for the i-th DIR (from 1), a forked child runs OP
                                                    # and SIGKILLs itself at step i; prints a JSON list
                                                    # of "killed" / "completed", one per DIR

OP is `save` (saves the defaults with `box.name = "Room new"` to DIR/classbox.toml) or `rollback`.
A step is one call of an os-level function that changes or syncs the disk, or the atomic exchange;
a `write` killed at its step first writes half its bytes (a torn write).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sync.atomic
from edge.core.config import BoxConfig, rollback_config, save_config

OS_STEPS = ("open", "write", "fsync", "close", "link", "replace", "rename", "unlink", "fchmod", "chmod", "mkdir")


def run(op: str, directory: Path) -> None:
    """Do OP once on the config in `directory`."""
    path = directory / "classbox.toml"
    if op == "save":
        config = BoxConfig()
        config.box.name = "Room new"
        save_config(config, path)
    else:
        rollback_config(path)


def instrument(kill_at: int | None) -> list[str]:
    """Wrap every step function; the returned list fills with step names as they run."""
    steps: list[str] = []

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            steps.append(name)
            if len(steps) == kill_at:
                if name == "write" and len(args[1]) > 1:
                    real(args[0], args[1][: len(args[1]) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return step

    for name in OS_STEPS:
        setattr(os, name, wrap(name, getattr(os, name)))
    sync.atomic._rename_exchange = wrap("exchange", sync.atomic._rename_exchange)  # type: ignore[method-assign]
    return steps


def kill_each(op: str, directories: list[Path]) -> list[str]:
    """Run OP in a forked child per directory, the i-th killed at step i; what became of each."""
    outcomes = []
    for index, directory in enumerate(directories, start=1):
        pid = os.fork()
        if pid == 0:
            instrument(index)
            run(op, directory)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        outcomes.append("killed" if killed else "completed" if os.WEXITSTATUS(status) == 0 else "failed")
    return outcomes


if __name__ == "__main__":
    mode, operation, *dirs = sys.argv[1:]
    if mode == "count":
        done = instrument(None)
        run(operation, Path(dirs[0]))
        print(json.dumps(done))
    else:
        print(json.dumps(kill_each(operation, [Path(d) for d in dirs])))
