"""The box's own TLS certificate: self-signed at first boot (EC P-256, 10 years), known by its SHA-256 fingerprint.

Nobody can get a public certificate for a box on a school LAN, so the box makes one and people
check it by the fingerprint the console, `classbox doctor` and `classbox admin fingerprint` show.
The names in it are the box's name and host name under `.local` and the addresses it has now.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import logging
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync.atomic import write_atomic

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
VALID_DAYS = 3650
SIOCGIFADDR = 0x8915

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Certificate:
    """Where the box's certificate and key are, and the certificate's SHA-256 fingerprint."""

    cert_path: Path
    key_path: Path
    fingerprint: str


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate as people compare it: `AB:CD:...` (32 pairs)."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)


def host_label(name: str) -> str:
    """A DNS label for the box's name (`Room 12 / Science` -> `room-12-science`)."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    return label or "classbox"


def local_addresses() -> list[IPAddress]:
    """Loopback and the IPv4 address of every interface that has one now."""
    found: list[IPAddress] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    for _, name in socket.if_nameindex():
        address = _interface_ipv4(name)
        if address is not None and address not in found:
            found.append(address)
    return found


def _interface_ipv4(name: str) -> IPAddress | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:  # an interface without an IPv4 address
            return None
    return ipaddress.ip_address(answer[20:24])


def make_certificate(box_name: str, addresses: list[IPAddress]) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a new self-signed certificate for the box."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = dict.fromkeys([f"{host_label(box_name)}.local", f"{host_label(socket.gethostname())}.local", "localhost"])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, next(iter(names)))])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName(name) for name in names] + [x509.IPAddress(address) for address in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # a box whose clock is a little behind still accepts it
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def load_certificate(state_dir: Path) -> Certificate | None:
    """The box's certificate as it is on disk, or None when there is none (or it cannot be read)."""
    directory = state_dir / TLS_DIR
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    try:
        cert_pem = cert_path.read_bytes()
        key_ok = key_path.stat().st_size > 0
    except OSError:
        return None
    try:
        found = fingerprint(cert_pem)
    except ValueError:
        return None
    return Certificate(cert_path, key_path, found) if key_ok else None


def ensure_certificate(state_dir: Path, box_name: str) -> Certificate:
    """The box's certificate, made at first boot (key 0600, both written atomically, the key first)."""
    existing = load_certificate(state_dir)
    if existing is not None:
        return existing
    directory = state_dir / TLS_DIR
    cert_pem, key_pem = make_certificate(box_name, local_addresses())
    write_atomic(directory / KEY_FILE, key_pem, mode=0o600)
    write_atomic(directory / CERT_FILE, cert_pem, mode=0o644)
    made = Certificate(directory / CERT_FILE, directory / KEY_FILE, fingerprint(cert_pem))
    log.info("made the box's HTTPS certificate, SHA-256 fingerprint %s", made.fingerprint)
    return made
