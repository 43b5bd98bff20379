"""Closing an ICE connection at the moment its checks complete leaves no consent checks running (aioice's race)."""

from __future__ import annotations

import asyncio

from aioice import Connection

from edge.stream.ice_restart import close_within


async def _pair() -> tuple[Connection, Connection, asyncio.Task[None], asyncio.Task[None]]:
    """Two loopback ICE agents, introduced to each other, connecting."""
    box, student = Connection(ice_controlling=True), Connection(ice_controlling=False)
    for agent in (box, student):
        await agent.gather_candidates()
    for agent, other in ((box, student), (student, box)):
        agent.remote_username, agent.remote_password = other.local_username, other.local_password
        for candidate in other.local_candidates:
            await agent.add_remote_candidate(candidate)
        await agent.add_remote_candidate(None)
    return box, student, asyncio.create_task(box.connect()), asyncio.create_task(student.connect())


async def _checks_done_but_connect_not_resumed(agent: Connection, connecting: asyncio.Task[None]) -> None:
    """Step the loop one callback at a time until the checks completed and connect() has not yet run on."""
    for _ in range(200_000):
        if agent._check_list_done and agent._query_consent_task is None and not connecting.done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the checks never completed")


async def test_a_connection_closed_as_its_checks_complete_starts_no_consent_checks_afterwards() -> None:
    box, student, box_connecting, student_connecting = await _pair()
    try:
        await _checks_done_but_connect_not_resumed(box, box_connecting)
        await close_within(box.close(), [box])
        await asyncio.gather(box_connecting, return_exceptions=True)
        await asyncio.sleep(0)
        late = box._query_consent_task
        assert late is None or late.done(), "consent checks run on a closed connection"
    finally:
        await close_within(student.close(), [student])
        await asyncio.gather(student_connecting, return_exceptions=True)


async def test_aioice_alone_starts_them_after_close_so_the_case_above_is_the_race() -> None:
    """Without close_within's clean-up the consent task is started after close(): the race is real."""
    box, student, box_connecting, student_connecting = await _pair()
    try:
        await _checks_done_but_connect_not_resumed(box, box_connecting)
        await box.close()
        await asyncio.gather(box_connecting, return_exceptions=True)
        late = box._query_consent_task
        assert late is not None
        assert not late.done()
        late.cancel()
        await asyncio.gather(late, return_exceptions=True)
    finally:
        await close_within(student.close(), [student])
        await asyncio.gather(student_connecting, return_exceptions=True)
