"""The suite guards themselves: a blocking test, a leaked task and a leaked thread each fail."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_blocking_the_loop_fails(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import time
        async def test_blocks():
            time.sleep(1.0)
        async def test_fine():
            import asyncio
            await asyncio.sleep(0.6)
        """
    )
    result = inner.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*event loop blocked*", "*time.sleep(1.0)*"])


def test_leaked_task_and_thread_fail(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import asyncio, threading
        stop = threading.Event()
        async def test_leaks_task():
            asyncio.create_task(asyncio.sleep(30), name="orphan")
        def test_leaks_thread():
            threading.Thread(target=stop.wait, name="orphan-thread", daemon=True).start()
        def test_cleanup():
            stop.set()
        """
    )
    result = inner.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*leaked asyncio tasks*orphan*", "*leaked threads*orphan-thread*"])
