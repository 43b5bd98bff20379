"""Suite guards and shared fixtures.

Guards (STYLE.md 10): a test fails if it blocks its event loop for longer than
BLOCK_LIMIT_S, or leaves behind a thread or an asyncio task it started.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from httpx._transports import default as httpx_transport
from playwright.async_api import Browser

BLOCK_LIMIT_S = 0.5
THREAD_GRACE_S = 3.0


def _reuse_ssl_contexts() -> None:
    """Test clients share one TLS context per setting: httpx reads the system's CA bundle (0.2 s, more
    under load) on the test's event loop for every client it creates, which is the test's cost, not the box's."""
    made: dict[tuple[object, ...], Any] = {}
    create = httpx_transport.create_ssl_context

    @functools.wraps(create)
    def reused(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        key = (verify if isinstance(verify, bool | str) else id(verify), cert, trust_env)
        if key not in made:
            made[key] = create(verify=verify, cert=cert, trust_env=trust_env)
        return made[key]

    httpx_transport.create_ssl_context = reused


_reuse_ssl_contexts()


class LoopBlockWatch:
    """A heartbeat task on the loop and a thread that notices when the heartbeat stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop, loop_thread: threading.Thread) -> None:
        self._loop = loop
        self._loop_thread = loop_thread
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self.blocks: list[str] = []
        self._task = loop.create_task(self._heartbeat(), name="test-guard:heartbeat")
        self._thread = threading.Thread(target=self._watch, name="test-guard:loop-watch", daemon=True)
        self._thread.start()

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(0.05)

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(0.05):
            if not self._loop.is_running():  # between fixture set-up and the test: pytest's time, not the loop's
                self._beat = time.monotonic()
                continue
            stalled = time.monotonic() - self._beat
            if stalled > BLOCK_LIMIT_S and not reported:
                frame = sys._current_frames().get(self._loop_thread.ident or 0)
                stack = "".join(traceback.format_stack(frame)) if frame else "(no stack)"
                self.blocks.append(f"event loop blocked > {BLOCK_LIMIT_S}s at:\n{stack}")
                reported = True
            elif stalled <= BLOCK_LIMIT_S:
                reported = False

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._stop.set()
        await asyncio.to_thread(self._thread.join)


@pytest.fixture
async def _loop_guard(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    watch = LoopBlockWatch(loop, threading.current_thread())
    before = asyncio.all_tasks(loop)
    yield
    await watch.close()
    leaked = []
    for _ in range(20):  # tasks that are finishing get a moment
        leaked = [t for t in asyncio.all_tasks(loop) - before if t is not asyncio.current_task() and not t.done()]
        if not leaked:
            break
        await asyncio.sleep(0.05)
    for task in leaked:
        task.cancel()
    if leaked:
        pytest.fail(f"test leaked asyncio tasks: {[t.get_name() for t in leaked]}")
    if watch.blocks and not request.node.get_closest_marker("allow_blocking"):
        pytest.fail(watch.blocks[0])


@pytest.fixture(autouse=True)
def _guards(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail on leaked threads (every test) and on a blocked loop or leaked tasks (async tests)."""
    before = set(threading.enumerate())
    # The suite's own heap grows test by test (a box's stays small): collect it now and freeze the
    # survivors, so a full garbage collection inside a test never walks every earlier test's objects
    # (seen: over half a second on the test's loop, in the guard's stack as a weakref callback).
    gc.collect()
    gc.freeze()
    if asyncio.iscoroutinefunction(getattr(request.node, "obj", None)):
        request.getfixturevalue("_loop_guard")
    yield
    deadline = time.monotonic() + THREAD_GRACE_S
    extra: list[threading.Thread] = []
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive() and not _exempt(t)]
        if not extra:
            return
        time.sleep(0.05)
    pytest.fail(f"test leaked threads: {[t.name for t in extra]}")


def _exempt(thread: threading.Thread) -> bool:
    # asyncio's default executor threads end when the loop closes, after this check runs.
    return thread.name.startswith(("asyncio_", "test-guard:"))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium for a browser test."""
    # Imported here: test_guards runs a copy of this file where the tests package is not importable.
    from tests.browser import chromium

    async with chromium() as launched:
        yield launched


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_blocking: the test knowingly blocks its event loop")
