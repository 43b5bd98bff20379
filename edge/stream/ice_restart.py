"""An ICE restart under a live aiortc connection: new credentials and a new path, the same DTLS and SRTP.

aiortc 1.16 has no `restartIce()`: its ICE transport holds one aioice `Connection` for life. When a
school's uplink drops for a few seconds, the SFU still holds the box's session, and every student
subscribed to it stays subscribed; a new session would make each of them subscribe again. So the
box restarts ICE instead (RFC 8445 section 9, carried by WHIP's PATCH, RFC 9725 section 4.3.2):
`RestartableIce` routes the ICE transport's send and receive through whichever aioice connection is
current, so a fresh connection (new ufrag/pwd, new candidates, checks run again) can be swapped in
while the DTLS session and its SRTP keys carry on over the new path.

The same module closes peer connections whose path is dead (`close_peer`): a pulled cable leaves
datagrams queued in the sockets and aioice's close would wait for them as long as the cable is out.

This leans on aiortc internals (`RTCIceTransport._connection`, `_recv`, `_send` and its monitor
task); the lock pins aiortc, and the WHIP test against Janus proves the swap on every run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aioice import Candidate, Connection
from aiortc import RTCIceServer, RTCIceTransport, RTCPeerConnection
from aiortc.rtcicetransport import connection_kwargs

log = logging.getLogger(__name__)

MONITOR = "_RTCIceTransport__monitor_task"  # aiortc's task that turns a closed connection into "failed"
CLOSE_WAIT_S = 1.0  # a connection's close waits this long for its sockets to flush, then drops them
LATE_CONNECT_STEPS = 20  # of 10 ms: aioice's connect() looks at its checks every 20 ms


def abort_sockets(connection: Connection) -> None:
    """Drop a connection's UDP sockets without flushing them.

    With the box's own link down (a cable pulled: the route stays, flagged linkdown) datagrams queue
    in the socket and never leave, and aioice's close waits for them to drain: for as long as the
    link is down. What is queued then is worth nothing.
    """
    for protocol in list(connection._protocols):
        transport = getattr(protocol, "transport", None)
        inner = getattr(transport, "_TurnTransport__inner_protocol", None)  # a TURN relay: its own socket
        for candidate in (getattr(inner, "transport", None), transport):
            abort = getattr(candidate, "abort", None)
            if callable(abort):
                abort()
                break


async def close_connection(connection: Connection) -> None:
    """Close an aioice connection; its sockets are dropped when they cannot flush within CLOSE_WAIT_S."""
    await close_within(connection.close(), [connection])


async def close_peer(pc: RTCPeerConnection) -> None:
    """Close a peer connection (a viewer's, the uplink's) without waiting on a pulled cable."""
    transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport is not None]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    connections = list({id(c): c for c in (d.transport._connection for d in transports)}.values())
    await close_within(pc.close(), connections)


async def close_within(closing: Coroutine[Any, Any, None], connections: list[Connection]) -> None:
    """Run `closing`; if it has not finished in CLOSE_WAIT_S, drop the sockets of `connections` so it can."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait([task], timeout=CLOSE_WAIT_S)
    if not done:
        log.debug("ice: the sockets did not flush (the link is down): dropping them")
        for connection in connections:
            abort_sockets(connection)
        done, _ = await asyncio.wait([task], timeout=CLOSE_WAIT_S)
    if not done:  # something else holds it (a TURN allocation's refresh): it finishes on its own
        log.warning("ice: a connection is still closing after %.0f s; left to finish by itself", 2 * CLOSE_WAIT_S)
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)
        return
    task.result()
    await stop_late_consent(connections)


async def stop_late_consent(connections: list[Connection]) -> None:
    """Stop consent checks that aioice started after its connection was closed.

    A `connect()` whose checks completed just before `close()` has not yet read their outcome (it
    steps every 20 ms); it reads it after the close and starts consent checks anyway, which would
    send STUN to a gone peer for about 30 s. Only such a connection waits here, until it has read it.
    """
    for connection in connections:
        outcome = connection._check_list_state
        for _ in range(LATE_CONNECT_STEPS):
            if outcome.empty():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # the connect() that read it runs on to its last line
        late = connection._query_consent_task
        if late is not None and not late.done():
            late.cancel()


_CLOSING: set[asyncio.Future[None]] = set()  # closes left to finish: held so they are not collected mid-way


@dataclass(frozen=True)
class IceOffer:
    """This side of a restart: the fresh connection's credentials and candidates (what the PATCH carries)."""

    ufrag: str
    pwd: str
    candidates: list[str]  # SDP candidate values, without "a=candidate:"


@dataclass(frozen=True)
class IceAnswer:
    """The other side's new credentials, and its candidates when it sent any (else the old ones stand)."""

    ufrag: str
    pwd: str
    candidates: list[str]


class RestartableIce:
    """One ICE transport whose aioice connection can be replaced while DTLS runs over it."""

    def __init__(self, transport: RTCIceTransport, servers: list[RTCIceServer]) -> None:
        self._ice = transport
        self._kwargs = connection_kwargs(servers)
        self._fresh: Connection | None = None
        transport._recv = self._recv
        transport._send = self._send

    @property
    def connection(self) -> Connection:
        """The aioice connection media goes over now."""
        current: Connection = self._ice._connection
        return current

    def alive(self) -> bool:
        """False once the current connection has closed (aioice ends it when consent fails for 30 s)."""
        return not self.connection._closed and self._ice.state not in ("failed", "closed")

    async def _recv(self) -> bytes:
        while True:
            current = self.connection
            try:
                return await current.recv()
            except ConnectionError:
                if self.connection is current:
                    raise  # closed for good, not swapped: DTLS ends as it would without us
                # swapped: the next datagram comes from the new connection

    async def _send(self, data: bytes) -> None:
        await self.connection.send(data)

    def hold_old_path(self) -> None:
        """Stop the consent checks on the path that went quiet: failing, they would close it mid-restart.

        aioice ends a connection after six failed checks (some 25-40 s), and with it the ICE transport,
        the DTLS session and the senders for good. While a restart is tried the old path is left open
        (media still goes out on it, to nobody); the give-up time stays below the consent expiry.
        """
        consent = self.connection._query_consent_task
        if consent is not None and not consent.done():
            consent.cancel()
            self.connection._query_consent_task = None

    async def offer(self, servers: list[RTCIceServer] | None = None) -> IceOffer:
        """Gather a fresh connection (new credentials; `servers` when the server gave newer ones)."""
        await self.discard()
        old = self.connection
        kwargs = connection_kwargs(servers) if servers else self._kwargs
        self._fresh = fresh = Connection(ice_controlling=old.ice_controlling, components=1, **kwargs)
        await fresh.gather_candidates()
        return IceOffer(fresh.local_username, fresh.local_password, [c.to_sdp() for c in fresh.local_candidates])

    async def complete(self, answer: IceAnswer, checks_s: float) -> None:
        """Run the checks with the other side's answer, then move media onto the new path.

        Raises ConnectionError (the checks failed or took longer than `checks_s`); the old connection
        is then left as it was.
        """
        fresh, old = self._fresh, self.connection
        if fresh is None:
            raise ConnectionError("no ICE restart was offered")
        fresh.remote_username, fresh.remote_password = answer.ufrag, answer.pwd
        fresh.remote_is_lite = old.remote_is_lite
        candidates = [Candidate.from_sdp(c) for c in answer.candidates] or list(old.remote_candidates)
        for candidate in candidates:
            await fresh.add_remote_candidate(candidate)
        await fresh.add_remote_candidate(None)
        try:
            async with asyncio.timeout(checks_s):
                await fresh.connect()
        except TimeoutError as err:
            await self.discard()
            raise ConnectionError("the restarted ICE checks took too long") from err
        except ConnectionError:
            await self.discard()
            raise
        self._fresh = None
        if fresh._closed:  # aiortc's monitor would spin on a closed connection
            raise ConnectionError("the restarted connection closed at once")
        await self._swap(old, fresh)

    async def _swap(self, old: Connection, fresh: Connection) -> None:
        ice = self._ice
        monitor: asyncio.Future[None] | None = getattr(ice, MONITOR, None)
        if monitor is not None:  # it waits on the old connection: its close must not fail the transport
            monitor.cancel()
            await asyncio.wait([monitor])
        ice._connection = fresh
        ice.iceGatherer._connection = fresh
        setattr(ice, MONITOR, asyncio.ensure_future(ice._monitor()))
        await close_connection(old)  # wakes the pending receive, which goes on with the new connection
        log.debug("ice: restarted onto a new path")

    async def discard(self) -> None:
        """Drop a restart that was offered and not completed."""
        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            await close_connection(fresh)


SDPFRAG = "application/trickle-ice-sdpfrag"
MAX_SDPFRAG_BYTES = 16 * 1024


def offer_sdpfrag(offer: IceOffer, mids: list[str], kind: str) -> str:
    """The restart's SDP fragment (RFC 8840): new credentials and candidates on the bundle's first section."""
    lines = [
        f"a=group:BUNDLE {' '.join(mids)}",
        f"m={kind} 9 UDP/TLS/RTP/SAVPF 0",
        f"a=mid:{mids[0]}",
        f"a=ice-ufrag:{offer.ufrag}",
        f"a=ice-pwd:{offer.pwd}",
        *(f"a=candidate:{candidate}" for candidate in offer.candidates),
        "a=end-of-candidates",
    ]
    return "\r\n".join(lines) + "\r\n"


def parse_sdpfrag(text: str) -> IceAnswer:
    """The other side's answer to a restart; ValueError, in plain words, when it is not one."""
    if len(text) > MAX_SDPFRAG_BYTES:
        raise ValueError("the ICE restart's answer is too long")
    values: dict[str, str] = {}
    candidates = []
    for line in text.splitlines():
        name, _, value = line.strip().partition(":")
        if name == "a=candidate":
            try:
                Candidate.from_sdp(value)
            except (ValueError, IndexError):
                log.warning("ice: a broken candidate in the restart's answer is skipped: %.80s", value)
                continue  # the server has switched already: the others (or its old ones) will do
            candidates.append(value)
        elif name in ("a=ice-ufrag", "a=ice-pwd"):
            values.setdefault(name, value.strip())
    ufrag, pwd = values.get("a=ice-ufrag", ""), values.get("a=ice-pwd", "")
    if not ufrag or not pwd:
        raise ValueError("the ICE restart's answer has no new ICE credentials")
    return IceAnswer(ufrag, pwd, candidates)
