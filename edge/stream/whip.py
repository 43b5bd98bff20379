"""The WHIP uplink (RFC 9725): the live lesson published to a cloud SFU, from the shared packets.

A box on a school uplink cannot serve a hundred students behind their own NATs; an SFU can. The
box publishes ONE session: a video section per configured layer plus Opus, each fed by a
`ViewerFeed` on the media fan-out with the viewers' own `SharedPacketizer`, so publishing costs no
encode and no second split of the packets. The SFU's PLI/FIR ask the shared encoder for a keyframe.

The protocol (its HTTP side in `edge.stream.whip_http`): an OPTIONS first for the ICE servers
(`Link` headers; those of the last 201 are used on reconnects), POST of the offer as
`application/sdp` with the bearer token, 201 with the answer and a `Location`, DELETE of that
location when the lesson ends. A dead uplink is told from RTCP and
bytes, never from connection state (aiortc stays "connected" for ~28 s after the SFU dies): no RTCP
from the SFU for `DEAD_AFTER_S` while media goes out, or media that stops going out.

A dead uplink is mended in the way that costs the students least. Where the server takes PATCH
(`Accept-Patch: application/trickle-ice-sdpfrag` on its 201), the box restarts ICE on the same
session (`ice_restart.RestartableIce`: new credentials, the same DTLS): students subscribed at
the SFU stay subscribed. It keeps trying while the link is down, for up to `RESTART_GIVE_UP_S`.
Where the server cannot restart (no Accept-Patch, or it answers the PATCH with an error: it lost
the session), or the restart does not bring RTCP back, the box publishes a new session with
backoff. The lesson, the recording and local viewers never notice either. A refused token is not
retried until the settings change (or after `REFUSED_RETRY_S`): the admin page says so in plain words.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse
from typing import Any

import httpx
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from edge.core.component import Component, Status
from edge.core.config import UplinkSection
from edge.core.events import EventBus
from edge.core.ports import AlarmBoard, BudgetSource, ConfigSource, LessonHooks, LessonView, LiveLesson
from edge.core.texts import N_
from edge.media.live import video_layers
from edge.media.packets import AUDIO_LAYER, PacketFanout, PacketSource
from edge.stream.feeds import SharedPacketizer, ViewerFeed, prefer_codecs, route_keyframe_requests
from edge.stream.ice_restart import IceOffer, RestartableIce, close_peer, offer_sdpfrag
from edge.stream.whip_http import (
    WhipClient,
    WhipError,
    WhipRefused,
    WhipResource,
    WhipUnreachable,
    new_http_client,
)

log = logging.getLogger(__name__)

CHECK_S = 0.5
DEAD_AFTER_S = 3.0  # no RTCP from the SFU this long while media goes out: it is gone (Janus reports every ~1 s)
CONNECT_TIMEOUT_S = 10.0  # from the 201 to the SFU's first RTCP
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 8.0
REFUSED_RETRY_S = 60.0
MAX_STALE = 4
STOP_WAIT_S = 3.0  # the lesson's stop waits this long at most for a session being opened
RESTART_GIVE_UP_S = 20.0  # a link down longer than this gets a new session (aioice drops the old path at 30 s)
RESTART_CHECKS_S = 5.0  # the restarted ICE checks, once the server has answered the PATCH
RESTART_ATTEMPT_S = 10.0  # one whole attempt (gather, PATCH, checks): the look holds the uplink's lock meanwhile
ALARM = "uplink"


class UplinkSession:
    """One published session: its peer connection, its feeds on the fan-out, what the SFU sends back."""

    def __init__(self, fanout: PacketFanout, layers: list[str], packetizer: SharedPacketizer) -> None:
        self.fanout = fanout
        self.layers = layers
        self.feeds: list[ViewerFeed] = []
        self.senders: list[RTCRtpSender] = []
        self.pc: RTCPeerConnection | None = None
        self.resource: WhipResource | None = None
        self.client: WhipClient | None = None
        self.packetizer = packetizer
        self.opened_at = time.monotonic()
        self.rtcp_at: float | None = None
        self.rtcp_bytes = 0
        self.sent_bytes = 0
        self.sent_at = time.monotonic()
        self.kbps = 0.0
        self._stats_at = time.monotonic()
        self.servers: list[RTCIceServer] = []
        self.lost_at: float | None = None  # when the SFU was last heard of, once it went quiet: mending
        self.restarted = False  # an ICE restart was made since the loss (it must bring RTCP back)
        self._ice: dict[RTCIceTransport, RestartableIce] = {}

    def open(self, servers: list[RTCIceServer]) -> RTCPeerConnection:
        """The peer connection with a sendonly section per layer and one for audio, fed from the fan-out."""
        self.servers = servers
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        for layer in [*self.layers, AUDIO_LAYER]:
            kind = "audio" if layer == AUDIO_LAYER else "video"
            feed = self.fanout.add(ViewerFeed(kind, [layer], self.packetizer, self._feed_ready))
            transceiver = pc.addTransceiver(feed.track(), direction="sendonly")
            prefer_codecs(transceiver, "audio/opus" if kind == "audio" else "video/H264")
            feed.attach(transceiver.sender)
            if kind == "video":
                route_keyframe_requests(transceiver.sender, functools.partial(self.fanout.request_keyframe, layer))
            self.feeds.append(feed)
            self.senders.append(transceiver.sender)
        for sender in self.senders:  # before DTLS starts: its receive must go through the swap
            transport = sender.transport.transport
            self._ice.setdefault(transport, RestartableIce(transport, servers))
        return pc

    def restartable_ice(self) -> RestartableIce | None:
        """The ICE transport all media goes over, when the server takes a restart and that path is still up."""
        transports = {sender.transport.transport for sender in self.senders}
        if self.resource is None or not self.resource.restartable or len(transports) != 1:
            return None  # no PATCH there, or no BUNDLE: a new session
        ice = self._ice.get(transports.pop())
        return ice if ice is not None and ice.alive() else None

    def restart_fragment(self, offer: IceOffer) -> str:
        """The PATCH body for a restart: the fresh credentials and candidates, on the bundle's first section."""
        transceivers = self.pc.getTransceivers() if self.pc else []
        mids = [t.mid for t in transceivers if t.mid is not None] or ["0"]
        return offer_sdpfrag(offer, mids, transceivers[0].kind if transceivers else "video")

    def mended(self, now: float) -> None:
        """The ICE restart went through: the SFU must be heard again within CONNECT_TIMEOUT_S."""
        self.restarted = True
        self.opened_at, self.rtcp_at, self.sent_at = now, None, now

    def _feed_ready(self, feed: ViewerFeed) -> None:
        for layer in feed.layers:
            if layer != AUDIO_LAYER:
                self.fanout.request_keyframe(layer)

    def watch_rtcp(self) -> None:
        """Note every RTCP datagram the SFU sends (one DTLS transport: BUNDLE)."""
        if not self.senders:
            return
        dtls = self.senders[0].transport
        handle = dtls._handle_rtcp_data

        async def handling(data: bytes) -> None:
            self.rtcp_at = time.monotonic()
            self.rtcp_bytes += len(data)
            await handle(data)

        dtls._handle_rtcp_data = handling  # type: ignore[method-assign]

    async def read_stats(self) -> None:
        """Bytes sent so far (and the rate since the last look), from the senders' counts."""
        sent = 0
        for sender in self.senders:
            for stat in (await sender.getStats()).values():
                if stat.type == "outbound-rtp":
                    sent += stat.bytesSent
        now = time.monotonic()
        self.kbps = max(0, sent - self.sent_bytes) * 8 / 1000 / max(now - self._stats_at, 1e-3)
        if sent > self.sent_bytes:
            self.sent_at = now
        self.sent_bytes, self._stats_at = sent, now

    def problem(self, now: float) -> str:
        """Why this session is dead ('' while it is alive)."""
        if self.pc is not None and self.pc.connectionState in ("failed", "closed"):
            return f"the connection to the cloud server {self.pc.connectionState}"
        if self.rtcp_at is None:
            if now - self.opened_at > CONNECT_TIMEOUT_S:
                return "no media path to the cloud server (nothing came back after its answer)"
            return ""
        if now - self.rtcp_at > DEAD_AFTER_S:
            return f"the cloud server stopped answering (no RTCP for {now - self.rtcp_at:.1f} s)"
        if now - self.sent_at > DEAD_AFTER_S:
            return f"no media went to the cloud server for {now - self.sent_at:.1f} s"
        return ""

    @property
    def publishing(self) -> bool:
        """True once the SFU has answered with RTCP: media reaches it."""
        return self.rtcp_at is not None

    async def close(self) -> None:
        """Leave the fan-out and close the connection (idempotent)."""
        for feed in self.feeds:
            self.fanout.unsubscribe(feed)
            feed.close()
        self.feeds = []
        for ice in self._ice.values():
            await ice.discard()
        if self.pc is not None:
            pc, self.pc = self.pc, None
            try:  # a pulled cable would hold the close for as long as it stays out: its sockets are dropped
                await close_peer(pc)
            except Exception:  # a half-made connection: what it held is released regardless
                log.debug("uplink: closing the connection failed", exc_info=True)


class Uplink(Component):
    """Publishes the live lesson to the configured WHIP server while the lesson is live; reconnects on its own."""

    name = "uplink"

    def __init__(
        self,
        *,
        config: ConfigSource,
        bus: EventBus,
        lessons: LessonHooks,
        live: LiveLesson,
        packets: PacketSource,
        alarms: AlarmBoard,
        wan_budget: BudgetSource,
        packetizer: SharedPacketizer | None = None,
    ) -> None:
        """`packetizer`: the viewers' (each packet is split once); `wan_budget` keeps the published rate."""
        super().__init__()
        self._config_now, self._bus, self._live, self._packets = config, bus, live, packets
        self._alarms, self._wan_budget = alarms, wan_budget
        self._packetizer = packetizer or SharedPacketizer()
        self._session: UplinkSession | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._ice_servers: list[RTCIceServer] = []
        self._stale: list[tuple[WhipClient, WhipResource]] = []  # sessions a cut link kept us from ending
        self._target: tuple[str, str, tuple[str, ...]] | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST_S
        self.state = "off"
        self.error = ""
        self.reconnects = 0
        self.sessions = 0
        self.ice_restarts = 0
        self.published_s = 0.0
        self._publishing_since: float | None = None
        lessons.on_stop(self._lesson_stopped)

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._http = await new_http_client()
        self._report()

    async def run(self) -> None:
        while True:
            async with self._lock:
                await self.tick()
            await asyncio.sleep(CHECK_S)

    async def stop(self) -> None:
        async with self._lock:
            await self._end("the box is shutting down")
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- the state machine ----------------------------------------------------------------------

    def _config(self) -> UplinkSection:
        return self._config_now().uplink

    def _wanted(self) -> tuple[str, str, tuple[str, ...]] | None:
        """What to publish now (URL, token, layers), or None: no live lesson, no stream, or publishing is off."""
        config = self._config()
        if not config.publishes() or self._live.current() is None or self._packets() is None:
            return None
        configured = {layer.name for layer in video_layers(self._config_now())}
        layers = tuple(layer for layer in config.layers if layer in configured)
        return (config.whip_url, config.token, layers) if layers else None

    async def tick(self) -> None:
        """One look: open, watch or end the session as the lesson and settings say (the run loop calls this)."""
        wanted = self._wanted()
        if wanted != self._target or (wanted is None and self._session is not None):
            await self._end("the settings changed" if self._target and wanted else "not publishing now")
            self._target, self._retry_at, self._backoff = wanted, 0.0, BACKOFF_FIRST_S
            self._ice_servers = []  # another server (or token) may hand out other ones
            self.error = "" if wanted is None else self.error
            self.state = "off" if wanted is None else "connecting"
            if wanted is None:
                self._alarms.clear_alarm(ALARM)
        now = time.monotonic()
        if wanted is not None and self._session is None and now >= self._retry_at:
            await self._open(wanted)
        elif self._session is not None:
            await self._watch(self._session, now)
        self._reserve()
        self._report()

    async def _open(self, wanted: tuple[str, str, tuple[str, ...]]) -> None:
        url, token, layers = wanted
        fanout = self._packets()
        if fanout is None or self._http is None:
            return
        client = WhipClient(url, token, self._http)
        session = UplinkSession(fanout, list(layers), self._packetizer)
        await self._delete_stale()
        try:
            servers = await client.ice_servers() or self._ice_servers  # fresh credentials, else the last 201's
            pc = session.open(servers)
            await pc.setLocalDescription(await pc.createOffer())
            answer, resource = await client.publish(pc.localDescription.sdp)
            session.resource, session.client = resource, client
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        except WhipRefused as err:
            await self._failed(session, client, err, refused=True)
            return
        except (WhipError, ValueError, OSError) as err:
            await self._failed(session, client, err)
            return
        except Exception as err:  # whatever aiortc raises on the server's answer: that session is no use
            await self._failed(session, client, WhipError(f"the cloud server's answer was refused: {err}"))
            return
        session.watch_rtcp()
        self._ice_servers = resource.ice_servers or self._ice_servers
        self._session = session
        self.sessions += 1
        log.info("uplink: publishing %s to the cloud server (session %d)", "+".join(layers), self.sessions)

    async def _failed(self, session: UplinkSession, client: WhipClient, err: Exception, refused: bool = False) -> None:
        if session.resource is not None:
            await client.delete(session.resource)
        await session.close()
        self._set_error(str(err), "refused" if refused else "reconnecting")
        wait = REFUSED_RETRY_S if refused else self._backoff
        self._retry_at = time.monotonic() + wait
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    async def _watch(self, session: UplinkSession, now: float) -> None:
        await session.read_stats()
        if session.lost_at is not None and not session.restarted:
            await self._mend(session, now)
            return
        problem = session.problem(now)
        if problem:
            if not session.restarted:
                self.reconnects += 1
            self._set_error(problem, "reconnecting")
            ice = session.restartable_ice() if session.publishing and not session.restarted else None
            if ice is not None:  # it published: the server holds a session worth keeping
                log.warning("uplink: %s; restarting ICE on the same session", problem)
                ice.hold_old_path()
                session.lost_at, self._retry_at = now, now
                await self._mend(session, now)
                return
            log.warning("uplink: %s; publishing again", problem)
            await self._renew(problem, now + self._backoff)
            return
        if session.publishing and self.state != "publishing":
            session.lost_at, session.restarted = None, False
            self.state, self.error, self._backoff = "publishing", "", BACKOFF_FIRST_S
            self._publishing_since = now
            self._alarms.clear_alarm(ALARM)
            self._bus.publish("uplink.state", state=self.state)

    async def _mend(self, session: UplinkSession, now: float) -> None:
        """Restart ICE on the session the SFU still holds, while the link is down; else a new session."""
        ice, client, resource = session.restartable_ice(), session.client, session.resource
        if now < self._retry_at:
            return
        if ice is None or client is None or resource is None or now - (session.lost_at or now) > RESTART_GIVE_UP_S:
            await self._renew(self.error or "the cloud server stopped answering", now)
            return
        try:
            async with asyncio.timeout(RESTART_ATTEMPT_S):
                offer = await ice.offer(resource.ice_servers or session.servers)
                answer = await client.restart_ice(resource, session.restart_fragment(offer))
                await ice.complete(answer, RESTART_CHECKS_S)
        except WhipUnreachable:  # the link is still down: the session waits on the server, try again
            await ice.discard()
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
            return
        except Exception as err:  # the server lost the session, the checks failed, or anything else: renew
            await ice.discard()
            why = str(err) or type(err).__name__
            log.warning("uplink: the ICE restart failed (%s); publishing a new session", why)
            await self._renew(why, time.monotonic())
            return
        session.mended(time.monotonic())
        self.ice_restarts += 1
        log.info("uplink: ICE restarted on the same session (restart %d)", self.ice_restarts)

    async def _renew(self, why: str, retry_at: float) -> None:
        """End the session; a new one is published from `retry_at` (the backoff grows)."""
        await self._end(why)
        self._set_error(why, "reconnecting")
        self._retry_at = retry_at
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _set_error(self, error: str, state: str) -> None:
        changed = state != self.state
        self.state, self.error = state, error
        if state == "refused":
            self._alarms.raise_alarm(ALARM, N_("The cloud server refused the box's token: the lesson is not published"))
        else:
            self._alarms.raise_alarm(ALARM, N_("The lesson is not reaching the cloud server: reconnecting"))
        self._report()  # health follows at once: a restart may be under way for seconds
        if changed:
            self._bus.publish("uplink.state", state=state)

    async def _end(self, why: str) -> None:
        session, self._session = self._session, None
        if self._publishing_since is not None:
            self.published_s += time.monotonic() - self._publishing_since
            self._publishing_since = None
        if session is None:
            return
        client, resource = session.client, session.resource
        if client is not None and resource is not None and not await client.delete(resource):
            # A cut link: the server still holds the session (and may refuse a new one as "in use").
            self._stale = [*self._stale, (client, resource)][-MAX_STALE:]
        await session.close()
        log.info("uplink: session ended (%s)", why)

    async def _delete_stale(self) -> None:
        """End the sessions a cut link left on the server, now that it may be reachable again."""
        left = []
        for client, resource in self._stale:
            if not await client.delete(resource):
                left.append((client, resource))
        self._stale = left

    async def _lesson_stopped(self, lesson: LessonView) -> None:
        """End the session before the encoders stop; never hold the lesson's stop behind a slow server."""
        try:
            async with asyncio.timeout(STOP_WAIT_S):
                await self._lock.acquire()
        except TimeoutError:
            log.warning("uplink: the cloud server is slow to answer; the session ends after the lesson")
            return  # the next look finds no lesson and ends the session then
        try:
            await self._end("lesson ended")
            self._target, self.state, self.error = None, "off", ""
            self._alarms.clear_alarm(ALARM)
            self._report()
        finally:
            self._lock.release()

    # -- what the box reads ---------------------------------------------------------------------

    def live_kbps(self) -> float:
        """The bitrate the published layers and audio take (what the WAN budget keeps for them)."""
        layers = {layer.name: layer.kbps for layer in video_layers(self._config_now())}
        target = self._target
        video = sum(layers.get(name, 0) for name in target[2]) if target else 0
        return float(video + self._config_now().stream.audio_kbps)

    def _reserve(self) -> None:
        """While a lesson is published, the WAN budget keeps its bitrate (set again each look: sync restarts)."""
        budget = self._wan_budget()
        if budget is not None and self._target is not None and self.serves_students():
            budget.set_live_reservation(self.live_kbps())

    def status(self) -> dict[str, Any]:
        """What the admin page and the panel show: state, plain-words error, rate, reconnects."""
        config, session = self._config(), self._session
        return {
            "mode": config.mode,
            "state": self.state,
            "error": self.error,
            "target": _host(config.whip_url),
            "player_url": config.player_url,
            "layers": list(self._target[2]) if self._target else list(config.layers),
            "kbps": round(session.kbps, 1) if session else 0.0,
            "reconnects": self.reconnects,
            "sessions": self.sessions,
            "ice_restarts": self.ice_restarts,
        }

    def serves_students(self) -> bool:
        """True while the lesson is (or is about to be) on the cloud server; False when it was refused."""
        return self.state in ("connecting", "publishing", "reconnecting")

    def _report(self) -> None:
        session = self._session
        now = time.monotonic()
        rtcp_age = now - session.rtcp_at if session and session.rtcp_at else -1.0
        since = now - self._publishing_since if self._publishing_since is not None else 0.0
        metrics = {
            "uplink_publishing": int(self.state == "publishing"),
            "uplink_kbps": round(session.kbps, 1) if session else 0.0,
            "uplink_reconnects_total": self.reconnects,
            "uplink_sessions_total": self.sessions,
            "uplink_ice_restarts_total": self.ice_restarts,  # links mended on the same session
            "uplink_rtcp_age_s": round(rtcp_age, 2),
            "uplink_published_s": round(self.published_s + since, 1),
            "uplink_sessions_left_on_server": len(self._stale),  # a cut link kept the box from ending them
            "uplink_state": self.state,
        }
        status: Status = "degraded" if self.state in ("reconnecting", "refused") else "ok"
        detail = self.error or {"off": "not publishing", "connecting": "connecting"}.get(self.state, self.state)
        self.set_health(status, detail, **metrics)

    async def check(self, url: str, token: str) -> str:
        """Try `url` with `token` now (a session made and ended at once); '' when it works, else why not."""
        if self.state == "publishing" and self._target is not None and self._target[:2] == (url, token):
            return ""  # the lesson is going out there now (a second session could be refused as "in use")
        fanout = self._packets()
        async with await new_http_client() as http:
            client = WhipClient(url, token, http)
            session = UplinkSession(fanout or PacketFanout(), ["high"], SharedPacketizer())
            try:
                pc = session.open(await client.ice_servers())
                await pc.setLocalDescription(await pc.createOffer())
                _, resource = await client.publish(pc.localDescription.sdp)
                await client.delete(resource)
            except WhipError as err:
                return str(err)
            finally:
                await session.close()
        return ""


def _host(url: str) -> str:
    """The server's host (what the pages show of the target: no path, no credentials)."""
    return (urllib.parse.urlsplit(url).hostname or "") if url else ""
