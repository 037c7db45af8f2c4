"""SQLite storage of chat messages (WAL; a message seen twice is stored once).

A message is identified twice over: by its id, and by (room, nick, client_msg_id) so a say
retried through another gateway (new id, same client_msg_id) is still stored once; the
first one stored wins.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    nick TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL,
    UNIQUE (room, nick, client_msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
"""
_FIELDS = ("id", "room", "nick", "text", "ts", "client_msg_id")


@dataclass(frozen=True)
class StoredMessage:
    id: str
    room: str
    nick: str
    text: str
    ts: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "nick": self.nick,
            "text": self.text,
            "ts": self.ts,
        }


class HistoryStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, which is what acking the broker promises.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("history store is not open")
        return self._db

    def store(self, messages: Iterable[dict[str, Any]]) -> tuple[int, int]:
        """Commit messages in one transaction; returns (stored, duplicates)."""
        db = self._conn()
        stored = duplicates = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for message in messages:
                cursor = db.execute(
                    "INSERT INTO messages (id, room, nick, text, ts, client_msg_id)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    tuple(message[name] for name in _FIELDS),
                )
                if cursor.rowcount:
                    stored += 1
                else:
                    duplicates += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return stored, duplicates

    def after(self, room: str, after: str, limit: int) -> list[StoredMessage]:
        """The first ``limit`` messages of ``room`` with an id greater than ``after``."""
        rows = self._conn().execute(
            "SELECT id, room, nick, text, ts FROM messages"
            " WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
            (room, after, limit),
        )
        return [StoredMessage(*row) for row in rows]

    def latest(self, room: str, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages of ``room``, oldest first."""
        rows = self._conn().execute(
            "SELECT id, room, nick, text, ts FROM"
            " (SELECT * FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (room, limit),
        )
        return [StoredMessage(*row) for row in rows]

    def count(self, room: str | None = None) -> int:
        if room is None:
            row = self._conn().execute("SELECT count(*) FROM messages").fetchone()
        else:
            row = (
                self._conn()
                .execute("SELECT count(*) FROM messages WHERE room = ?", (room,))
                .fetchone()
            )
        return int(row[0])
