"""The courseware store on its own: quota with LRU eviction and pins, integrity check, migrations; publish CLI."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sync.chunks import ItemIndex, cut
from sync.errors import CorruptChunk, NotInStore, QuotaExceeded, StoreError
from sync.store import MIGRATIONS, Store
from tests.helpers import REPO


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def put_item(store: Store, course: str, path: str, data: bytes) -> ItemIndex:
    """Register and fill an item the way a pull does."""
    chunks = [(h, n, bytes(v)) for h, n, v in cut(data)]
    index = ItemIndex(
        course, path, len(data), hashlib.sha256(data).hexdigest(), "application/pdf", [(h, n) for h, n, _ in chunks]
    )
    store.want(index)
    for digest, _, raw in chunks:
        store.put_chunk(digest, raw)
    assert store.complete(course, path)
    return index


def test_quota_evicts_least_recently_used_items_but_never_pinned_ones(tmp_path: Path) -> None:
    rng = random.Random(4)
    store = Store(tmp_path / "cw.db", quota_bytes=700_000, clock=Clock())
    try:
        put_item(store, "history", "a.pdf", rng.randbytes(300_000))
        put_item(store, "math", "b.pdf", rng.randbytes(300_000))
        store.pin("history", until=10**12, reason="lesson tomorrow 08:00")
        store.touch("math", "b.pdf")
        put_item(store, "art", "c.pdf", rng.randbytes(300_000))  # needs room: math goes, history is pinned
        assert store.item("history", "a.pdf").size == 300_000
        with pytest.raises(NotInStore):
            store.item("math", "b.pdf")
        assert store.used_bytes <= 700_000
        states = {(c["id"], i["path"]): i["state"] for c in store.courses() for i in c["items"]}
        assert states[("math", "b.pdf")] == "missing"
        store.pin("art", until=10**12)
        with pytest.raises(QuotaExceeded):
            put_item(store, "music", "d.pdf", rng.randbytes(300_000))
    finally:
        store.close()


def test_a_chunk_that_does_not_match_its_hash_never_enters(tmp_path: Path) -> None:
    store = Store(tmp_path / "cw.db")
    try:
        with pytest.raises(CorruptChunk):
            store.put_chunk("0" * 64, b"not that")
        assert store.used_bytes == 0
    finally:
        store.close()


def test_a_new_version_is_served_only_once_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "cw.db")
    try:
        old = random.Random(1).randbytes(200_000)
        put_item(store, "math", "v.pdf", old)
        new = old[:100_000] + random.Random(2).randbytes(100_000)
        chunks = [(h, n, bytes(v)) for h, n, v in cut(new)]
        index = ItemIndex(
            "math",
            "v.pdf",
            len(new),
            hashlib.sha256(new).hexdigest(),
            "application/pdf",
            [(h, n) for h, n, _ in chunks],
        )
        assert store.want(index)
        missing = store.missing(index)
        for digest, _, raw in chunks[: len(chunks) // 2]:
            store.put_chunk(digest, raw)
        assert len(missing) >= 1
        assert b"".join(store.read(store.item("math", "v.pdf"))) == old
        for digest, _, raw in chunks:
            store.put_chunk(digest, raw)
        assert store.complete("math", "v.pdf")
        assert b"".join(store.read(store.item("math", "v.pdf"))) == new
        assert store.integrity() == "ok"
    finally:
        store.close()


def test_schema_is_migrated_once_and_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "cw.db").close()
    conn = sqlite3.connect(tmp_path / "cw.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    Store(tmp_path / "cw.db").close()  # reopening migrates nothing and fails nothing
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(StoreError):
        Store(bad)


def test_classbox_publish_makes_a_repository_and_reports_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "src" / "science").mkdir(parents=True)
    (tmp_path / "src" / "science" / "cells.pdf").write_bytes(b"%PDF" + bytes(5000))
    run = [
        sys.executable,
        "-m",
        "edge",
        "publish",
        str(tmp_path / "src"),
        str(tmp_path / "repo"),
        "--keys",
        str(tmp_path / "k"),
    ]
    done = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "published version 1" in done.stdout
    assert (tmp_path / "repo" / "metadata" / "timestamp.json").exists()
    assert (tmp_path / "k" / "root.pem").stat().st_mode & 0o077 == 0
    (tmp_path / "src" / "bad name!").mkdir()
    refused = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "course folder name" in refused.stderr
