"""A history database that cannot be trusted is refused at start (StoreUnusable), never
served from nor silently replaced by an empty one; new files are private (0600 in 0700).

Real SQLite files, damaged the way disks and operators damage them."""

from __future__ import annotations

import random
import sqlite3
import stat
from pathlib import Path

import pytest

from chatstack.history.store import APPLICATION_ID, HistoryStore, StoreUnusable, marker_path


def message(n: int) -> dict:
    return {"id": f"01J{n:023d}", "room": f"r{n % 5}", "nick": "ada", "text": "x" * 300,
            "ts": n, "client_msg_id": f"c{n}"}  # fmt: skip


def filled(tmp_path: Path, count: int = 2000) -> Path:
    path = tmp_path / "state" / "history.sqlite3"
    store = HistoryStore(path)
    store.open()
    store.store(message(n) for n in range(count))
    store.close()
    db = sqlite3.connect(path)  # everything into the main file, as after a clean stop
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def page_size_and_root(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    size = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()[0]
    db.close()
    return size, root


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def refused(path: Path) -> str:
    with pytest.raises(StoreUnusable) as info:
        HistoryStore(path).open()
    return str(info.value)


def test_a_fresh_store_is_private_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "new" / "history.sqlite3"
    store = HistoryStore(path)
    store.open()
    store.store([message(1)])
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for name in (path, marker_path(path), path.with_name(path.name + "-wal")):
        assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    assert store._conn().execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    store.close()
    again = HistoryStore(path)
    again.open()  # a healthy store opens again
    assert again.count() == 1


def test_bad_header(tmp_path: Path) -> None:
    path = filled(tmp_path)
    overwrite(path, 0, b"this is no db!!\0")
    assert "file is not a database" in refused(path)


def test_damaged_page(tmp_path: Path) -> None:
    path = filled(tmp_path)
    size, _root = page_size_and_root(path)
    page_count = path.stat().st_size // size
    overwrite(path, size * (page_count // 2) + 100, random.Random(1).randbytes(2000))
    assert "damaged" in refused(path)


def test_damaged_table_root(tmp_path: Path) -> None:
    path = filled(tmp_path)
    size, root = page_size_and_root(path)
    overwrite(path, size * (root - 1), random.Random(2).randbytes(size))
    assert "damaged" in refused(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = filled(tmp_path)
    size, _root = page_size_and_root(path)
    with path.open("r+b") as f:
        f.truncate(size * 20)
    assert "malformed" in refused(path) or "damaged" in refused(path)


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_store_that_existed_is_not_replaced_by_an_empty_one(tmp_path: Path, how: str) -> None:
    path = filled(tmp_path, 10)
    if how == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()
    message_text = refused(path)
    assert marker_path(path).name in message_text
    assert ("empty" if how == "emptied" else "missing") in message_text
    assert not path.exists() or path.stat().st_size == 0  # nothing was created in its place


def test_a_replaced_store_is_refused(tmp_path: Path) -> None:
    path = filled(tmp_path, 10)
    path.unlink()
    sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
    assert "lost its chatstack application id" in refused(path)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.execute("CREATE TABLE t (x)")
    db.close()
    assert "not a chatstack history database" in refused(path)


def test_a_store_from_before_the_marker_is_adopted(tmp_path: Path) -> None:
    path = filled(tmp_path, 10)
    marker_path(path).unlink()  # as written by a version without markers
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")
    db.close()
    store = HistoryStore(path)
    store.open()
    assert store.count() == 10
    assert marker_path(path).exists()
