"""Remembers which id a (room, nick, client_msg_id) got, so a retried say is stored once.

An entry is created when a say is first published (with its future, so a retry that arrives
while the broker has not confirmed yet waits for the same outcome) and when a message is
delivered from the broker (so a retry reaching this gateway after the original was said
through another gateway gets the original id).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[str, str, str]  # room, nick, client_msg_id


@dataclass
class Entry:
    message_id: str
    ts: int
    expires: float
    # Pending while the first publish waits for its confirm; None once settled.
    confirmed: asyncio.Future[None] | None = None


class IdempotencyCache:
    def __init__(
        self, ttl_s: float, max_entries: int = 200_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Key, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires < self._clock():
            del self._entries[key]
            return None
        return entry

    def put(self, key: Key, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._prune()

    def remember(self, key: Key, message_id: str, ts: int) -> Entry:
        entry = Entry(message_id, ts, self._clock() + self._ttl)
        self.put(key, entry)
        return entry

    def forget(self, key: Key) -> None:
        self._entries.pop(key, None)

    def _prune(self) -> None:
        now = self._clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires >= now and len(self._entries) <= self._max:
                break
            del self._entries[key]
