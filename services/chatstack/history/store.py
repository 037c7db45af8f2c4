"""SQLite storage of chat messages (WAL; a message seen twice is stored once).

A message is identified twice over: by its id, and by (room, nick, sender, client_msg_id) so
a say retried through another gateway (new id, same client_msg_id) is still stored once; the
first one stored wins. ``sender`` is the hash of the client's secret token (docs/protocol.md,
"Exactly once"): another client reusing the same client_msg_id is another message.

Opening refuses a store that cannot be trusted (``StoreUnusable``), rather than serving
from it or starting an empty one in its place (docs/history-durability.md):

- the file is not a SQLite database, or ``PRAGMA quick_check`` finds damage;
- the file carries another application's ``application_id``;
- the marker file beside it (``<database>.created``, written when the database was created)
  says a database existed here, but the file is gone, empty, or lost its application id:
  a truncated or replaced file must not start as an empty history without a word.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    nick TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL,
    sender TEXT NOT NULL DEFAULT '',
    UNIQUE (room, nick, sender, client_msg_id)
) WITHOUT ROWID;
"""
_SCHEMA = (
    _TABLE.format(name="messages")
    + """
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
"""
)
# Version 2 added ``sender`` to the dedupe key (PRAGMA user_version).
_SCHEMA_VERSION = 2
_FIELDS = ("id", "room", "nick", "text", "ts", "client_msg_id", "sender")
# PRAGMA application_id of a chatstack history database: "CHST".
APPLICATION_ID = 0x43485354
# How many problems quick_check reports at most (the first one names the damage).
_CHECK_PROBLEMS = 5


class StoreUnusable(Exception):
    """The database cannot be trusted; starting anyway would lose or hide messages."""


def marker_path(database: Path) -> Path:
    """The file that records that ``database`` was created (and so must exist)."""
    return database.with_name(database.name + ".created")


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
        """Open (creating a new store only where none ever was); raises StoreUnusable."""
        in_memory = str(self.path) == ":memory:"
        created = False if in_memory else self._prepare_file()
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            try:
                self._check(db, created)
                db.execute("PRAGMA journal_mode=WAL")
                # FULL: a commit survives power loss, which is what acking the broker promises.
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA busy_timeout=5000")
                self._migrate(db)
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            except BaseException:
                db.close()
                raise
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", I/O
            raise StoreUnusable(f"{self.path}: {exc}") from None
        if not in_memory and not marker_path(self.path).exists():
            self._write_marker()
        self._db = db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Version 1 (no ``sender``): rebuild the table with the new unique key, in one
        transaction (SQLite cannot change a table's UNIQUE constraint in place). Rows from
        then get sender '' (what a gateway without tokens sends)."""
        columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
        if not columns or "sender" in columns:
            return
        # One script, one transaction (executescript commits anything pending first).
        try:
            db.executescript(
                "BEGIN IMMEDIATE;"
                + _TABLE.format(name="messages_v2")
                + "INSERT INTO messages_v2 (id, room, nick, text, ts, client_msg_id)"
                " SELECT id, room, nick, text, ts, client_msg_id FROM messages;"
                " DROP TABLE messages;"
                " ALTER TABLE messages_v2 RENAME TO messages;"
                " COMMIT;"
            )
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _prepare_file(self) -> bool:
        """Create the database file (0600, in a 0700 directory) if none ever existed here;
        True when it was created now. Refuse when the marker says one should exist."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker = marker_path(self.path)
        size = self.path.stat().st_size if self.path.exists() else None
        if marker.exists() and not size:
            state = "missing" if size is None else "empty (0 bytes)"
            raise StoreUnusable(
                f"{self.path} is {state}, but {marker.name} says a history database was"
                " created here: restore it from a backup, or delete the marker to start"
                " an empty history"
            )
        if size is None:
            # Private from the first byte: SQLite gives -wal and -shm the same mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return True
        return False

    def _check(self, db: sqlite3.Connection, created: bool) -> None:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        if application_id not in (0, APPLICATION_ID):
            raise StoreUnusable(
                f"{self.path} is not a chatstack history database"
                f" (application_id {application_id:#x})"
            )
        if application_id == 0 and not created and marker_path(self.path).exists():
            raise StoreUnusable(
                f"{self.path} lost its chatstack application id although"
                f" {marker_path(self.path).name} says it was created here: it was replaced"
                " or damaged; restore it from a backup"
            )
        problems = [row[0] for row in db.execute(f"PRAGMA quick_check({_CHECK_PROBLEMS})")]
        if problems != ["ok"]:
            detail = "; ".join(" ".join(p.split()) for p in problems)
            raise StoreUnusable(f"{self.path} is damaged (quick_check: {detail[:500]})")

    def _write_marker(self) -> None:
        marker = marker_path(self.path)
        text = json.dumps(
            {
                "database": self.path.name,
                "application_id": APPLICATION_ID,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "why": "chat-history refuses to start when this file exists and the database"
                " is missing or empty (docs/history-durability.md)",
            }
        )
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())

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
                    "INSERT INTO messages (id, room, nick, text, ts, client_msg_id, sender)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    tuple(message.get(name, "") for name in _FIELDS),
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

    def before(self, room: str, before: str, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages of ``room`` with an id less than ``before``,
        oldest first: the page that ends just before ``before``."""
        rows = self._conn().execute(
            "SELECT id, room, nick, text, ts FROM"
            " (SELECT * FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",
            (room, before, limit),
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
