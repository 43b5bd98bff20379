"""A student's SDP offer, checked before aiortc sees it: every way it can be wrong gets a reason.

aiortc's parser and negotiation raise whatever a bad line provokes (IndexError, AssertionError,
ValueError...), and some bad values pass parsing only to fail later inside a connection (a missing
fingerprint, a port past 65535, a repeated mid). What can be checked here is, so the student's
player hears why at once and the box never holds a connection that cannot work.
"""

from __future__ import annotations

import ipaddress
import re

from aioice.mdns import is_mdns_hostname
from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS
from aiortc.sdp import MediaDescription, SessionDescription

from edge.core.errors import BadOffer

MAX_OFFER_BYTES = 64 * 1024
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
HEX_PAIRS_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*$")
UINT32 = 2**32 - 1
MID_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,16}$")  # a token; the RTP mid extension holds 16 bytes
SECTION_KINDS = {"audio", "video", "application"}


def check_offer(sdp: str) -> None:
    """Raise BadOffer unless `sdp` looks like a WebRTC offer we can answer."""
    if len(sdp.encode()) > MAX_OFFER_BYTES:
        raise BadOffer(f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise BadOffer("the body is not an SDP offer (it must start with v=0)")
    if CONTROL_RE.search(sdp):
        raise BadOffer("the offer contains control characters")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as err:  # aiortc's parser raises whatever the bad line provokes
        raise BadOffer(f"the SDP offer could not be read: {type(err).__name__}: {err}") from err
    kinds = {m.kind for m in description.media}
    if not kinds & {"audio", "video"}:
        raise BadOffer("the offer has no audio or video section to receive")
    if kinds - SECTION_KINDS:
        raise BadOffer(
            f"the offer has a {sorted(kinds - SECTION_KINDS)[0]} section; this box answers audio, video and data"
        )
    mids: set[str] = set()
    for media in description.media:
        _check_section(media, mids)
    for group in description.group:
        unknown = [str(mid) for mid in group.items if str(mid) not in mids]
        if unknown:
            raise BadOffer(f"a=group:{group.semantic} names mid {unknown[0]}, which no section of the offer has")


def _check_section(media: MediaDescription, mids: set[str]) -> None:
    mid = media.rtp.muxId
    if not mid:
        raise BadOffer(f"the {media.kind} section has no a=mid")
    if not MID_RE.match(mid):
        raise BadOffer(f"the {media.kind} section's a=mid is not 1 to 16 token characters")
    if mid in mids:
        raise BadOffer(f"the offer repeats a=mid:{mid}")
    mids.add(mid)
    if media.kind in ("audio", "video") and media.direction not in (None, "recvonly", "sendrecv"):
        raise BadOffer(f"the {media.kind} section must be recvonly (it is {media.direction})")
    _check_fingerprint(media)
    _check_ice(media)
    _check_numbers(media)


def _check_fingerprint(media: MediaDescription) -> None:
    if media.dtls is None or not media.dtls.fingerprints:
        raise BadOffer(f"the {media.kind} section has no DTLS fingerprint and setup role (a=fingerprint, a=setup)")
    usable = [f for f in media.dtls.fingerprints if f.algorithm.lower() in X509_DIGEST_ALGORITHMS]
    if not usable:
        raise BadOffer(
            f"the offer's DTLS fingerprints use no algorithm this box checks ({', '.join(FINGERPRINT_BYTES)})"
        )
    for fingerprint in usable:
        size = FINGERPRINT_BYTES.get(fingerprint.algorithm.lower())
        if not HEX_PAIRS_RE.match(fingerprint.value) or (size and len(fingerprint.value.split(":")) != size):
            raise BadOffer(f"the {fingerprint.algorithm} fingerprint is not {size} hex bytes separated by colons")


def _check_ice(media: MediaDescription) -> None:
    ice = media.ice
    if ice is None or not ice.usernameFragment or not ice.password:
        return  # aiortc refuses a section without them, with its own reason
    if not 4 <= len(ice.usernameFragment) <= 256 or not 22 <= len(ice.password) <= 256:
        raise BadOffer("the ICE ufrag must be 4 to 256 characters and the pwd 22 to 256 (RFC 8839)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_numbers(media: MediaDescription) -> None:
    for candidate in media.ice_candidates:
        if not 0 <= candidate.port <= 65535 or not 0 <= candidate.priority <= UINT32:
            raise BadOffer(f"an ICE candidate in the {media.kind} section has port or priority out of range")
        if not _is_ip(candidate.ip) and not is_mdns_hostname(candidate.ip):
            # Any other name would be looked up in DNS by the socket, on the box's event loop.
            raise BadOffer("an ICE candidate's address must be an IP address or an mDNS name (.local)")
    for ssrc in media.ssrc:
        if not 0 <= ssrc.ssrc <= UINT32:
            raise BadOffer(f"a=ssrc:{ssrc.ssrc} is out of range")
    for extension in media.rtp.headerExtensions:
        if not 1 <= extension.id <= 255:
            raise BadOffer(f"a=extmap:{extension.id} is out of range (1 to 255)")
    for codec in media.rtp.codecs:
        if codec.payloadType is not None and not 0 <= codec.payloadType <= 127:
            raise BadOffer(f"payload type {codec.payloadType} is out of range (0 to 127)")
