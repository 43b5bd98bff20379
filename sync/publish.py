"""Build a static courseware repository from a folder of courses: chunks, chunk indexes, signed TUF metadata.

Layout (any web server, CDN, bucket or USB stick can hold it):

    metadata/1.root.json, N.targets.json, N.snapshot.json, timestamp.json   TUF, consistent snapshots
    targets/<sha256>.catalog.json                                            the list of courses and items
    targets/index/<course>/<dir>/<sha256>.<file>.json                        one chunk index per item
    chunks/<ab>/<sha256>                                                     content-defined chunks

`SRC_DIR/<course>/...` holds a course's files; an optional `course.json` gives `{"title": ...}`.
Re-publishing writes only chunks the repository lacks and bumps targets/snapshot/timestamp; the
timestamp is written last, so readers see the old or the new repository, whole. Old chunks stay
(boxes mid-pull may still want them).
"""

from __future__ import annotations

import json
import mimetypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from sync.atomic import fsync_dir, write_atomic
from sync.chunks import COURSE_RE, ItemIndex, index_file, valid_item_path
from sync.clock import utcnow
from sync.errors import PublishError

ROLES = ("root", "targets", "snapshot", "timestamp")
CATALOG = "catalog.json"
CATALOG_FORMAT = 1
# Boxes stay offline for weeks and USB repositories travel slowly: expiries are generous.
EXPIRY_DAYS = {"root": 730, "targets": 120, "snapshot": 120, "timestamp": 42}

Progress = Callable[[int, int], None]


@dataclass
class PublishReport:
    """What a publish run did."""

    courses: int = 0
    items: int = 0
    chunks_written: int = 0
    bytes_written: int = 0
    bytes_total: int = 0
    version: int = 0
    changed_items: list[str] = field(default_factory=list)


def load_keys(keydir: Path, create: bool = True) -> dict[str, CryptoSigner]:
    """One ed25519 signer per TUF role from `<keydir>/<role>.pem`, generated (mode 0600) if missing."""
    signers = {}
    for role in ROLES:
        path = keydir / f"{role}.pem"
        if path.exists():
            try:
                key = load_pem_private_key(path.read_bytes(), password=None)
            except ValueError as err:
                raise PublishError(f"{path}: not an unencrypted PEM private key") from err
            signers[role] = CryptoSigner(key)
        elif create:
            signer = CryptoSigner.generate_ed25519()
            write_atomic(path, signer.private_bytes, mode=0o600)
            signers[role] = signer
        else:
            raise PublishError(f"{path}: missing key for the {role} role")
    return signers


def content_type(path: Path) -> str:
    """The MIME type a browser needs for this file."""
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def scan(src: Path) -> dict[str, tuple[str, list[tuple[str, Path]]]]:
    """Courses in `src`: id -> (title, [(item path, file)]); raise PublishError on unsafe names."""
    if not src.is_dir():
        raise PublishError(f"{src}: not a folder of courses")
    courses = {}
    for folder in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not COURSE_RE.match(folder.name):
            raise PublishError(f"{folder}: a course folder name may use letters, digits, '.', '_' and '-'")
        title = folder.name
        meta = folder / "course.json"
        if meta.exists():
            try:
                title = str(json.loads(meta.read_text())["title"])[:200]
            except (ValueError, KeyError, TypeError) as err:
                raise PublishError(f'{meta}: expected {{"title": "..."}}') from err
        files = []
        for file in sorted(folder.rglob("*")):
            rel = file.relative_to(folder).as_posix()
            if not file.is_file() or file == meta or any(p.startswith(".") for p in rel.split("/")):
                continue
            if not valid_item_path(rel):
                raise PublishError(f"{file}: unsafe file name for courseware")
            files.append((rel, file))
        courses[folder.name] = (title, files)
    return courses


def _hashed_name(target_path: str, digest: str) -> str:
    head, _, tail = target_path.rpartition("/")
    return f"{head}/{digest}.{tail}" if head else f"{digest}.{tail}"


class Publisher:
    """Writes one publish run into a repository folder."""

    def __init__(self, repo: Path, signers: dict[str, CryptoSigner], now: datetime | None = None) -> None:
        self.repo = repo
        self.signers = signers
        self.now = now or utcnow()
        self.report = PublishReport()
        self.targets: dict[str, TargetFile] = {}

    def _expiry(self, role: str, days: int | None = None) -> datetime:
        return (self.now + timedelta(days=days if days is not None else EXPIRY_DAYS[role])).replace(microsecond=0)

    def put_target(self, target_path: str, data: bytes) -> None:
        """Write a target file under its hash-prefixed name and list it in targets metadata."""
        info = TargetFile.from_data(target_path, data, ["sha256"])
        file = self.repo / "targets" / _hashed_name(target_path, info.hashes["sha256"])
        if not file.exists():
            write_atomic(file, data)
        self.targets[target_path] = info

    def put_chunk(self, digest: str, data: memoryview) -> None:
        """Write a chunk unless the repository has it (temp + rename; fsynced once at the end)."""
        file = self.repo / "chunks" / digest[:2] / digest
        if file.exists():
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{digest}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, file)
        self.report.chunks_written += 1
        self.report.bytes_written += len(data)

    def sign(self, timestamp_days: int | None = None) -> int:
        """Write root (first run), targets, snapshot, then timestamp; return the new targets version."""
        meta = self.repo / "metadata"
        root = self._root(meta)
        previous = _load(meta / "timestamp.json")
        version = previous.signed.snapshot_meta.version + 1 if previous else 1
        targets = Metadata(Targets(version=version, expires=self._expiry("targets"), targets=self.targets))
        snapshot = Metadata(Snapshot(version=version, expires=self._expiry("snapshot")))
        snapshot.signed.meta["targets.json"] = MetaFile(version=version)
        timestamp = Metadata(Timestamp(version=version, expires=self._expiry("timestamp", timestamp_days)))
        timestamp.signed.snapshot_meta = MetaFile(version=version)
        os.sync()  # every chunk and index on disk before metadata points at them
        for role, md, name in (
            ("targets", targets, f"{version}.targets.json"),
            ("snapshot", snapshot, f"{version}.snapshot.json"),
            ("timestamp", timestamp, "timestamp.json"),
        ):
            md.sign(self.signers[role])
            write_atomic(meta / name, md.to_bytes(JSONSerializer(compact=False)))
        fsync_dir(meta)
        del root
        return version

    def _root(self, meta: Path) -> Metadata[Root]:
        existing = sorted(meta.glob("*.root.json"), key=lambda p: int(p.name.split(".")[0]))
        if existing:
            root: Metadata[Root] = Metadata[Root].from_bytes(existing[-1].read_bytes())
            for role, signer in self.signers.items():
                if signer.public_key.keyid not in root.signed.roles[role].keyids:
                    raise PublishError(f"the {role} key in the key folder is not the one the repository's root trusts")
            return root
        root = Metadata(Root(expires=self._expiry("root")))
        for role, signer in self.signers.items():
            root.signed.add_key(signer.public_key, role)
        root.sign(self.signers["root"])
        write_atomic(meta / "1.root.json", root.to_bytes(JSONSerializer(compact=False)))
        return root


def _load(path: Path) -> Metadata[Timestamp] | None:
    if not path.exists():
        return None
    md: Metadata[Timestamp] = Metadata[Timestamp].from_bytes(path.read_bytes())
    return md


def publish(
    src: Path,
    repo: Path,
    keydir: Path,
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
    timestamp_days: int | None = None,
) -> PublishReport:
    """Publish every course under `src` into the repository `repo`, signing with the keys in `keydir`."""
    courses = scan(src)
    publisher = Publisher(repo, load_keys(keydir), now)
    report = publisher.report
    report.bytes_total = sum(f.stat().st_size for _, files in courses.values() for _, f in files)
    done = 0
    catalog: dict[str, object] = {}
    for course, (title, files) in courses.items():
        items = {}
        for rel, file in files:
            index, chunks = index_file(course, rel, file, content_type(file))
            written = report.chunks_written
            for digest, view in chunks.items():
                publisher.put_chunk(digest, view)
            if report.chunks_written > written:
                report.changed_items.append(f"{course}/{rel}")
            target = f"index/{course}/{rel}.json"
            publisher.put_target(target, index.to_bytes())
            items[rel] = _catalog_entry(index, target)
            done += index.size
            if progress:
                progress(done, report.bytes_total)
        catalog[course] = {"title": title, "items": items}
        report.courses += 1
        report.items += len(items)
    # Signed with the catalog: a box whose clock is far behind never treats "now" as earlier than this.
    published_at = publisher.now.replace(microsecond=0).isoformat()
    document = {"format": CATALOG_FORMAT, "published_at": published_at, "courses": catalog}
    data = json.dumps(document, sort_keys=True, indent=1).encode()
    publisher.put_target(CATALOG, data)
    report.version = publisher.sign(timestamp_days)
    return report


def _catalog_entry(index: ItemIndex, target: str) -> dict[str, object]:
    return {"index": target, "size": index.size, "sha256": index.sha256, "content_type": index.content_type}


def stderr_progress() -> Progress | None:
    """A one-line progress bar on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        print(f"\rpublishing [{bar:<30}] {share:6.1%} {done / 1e6:9.1f} MB", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)

    return show
