"""Remembers which id a (room, nick, sender, client_msg_id) got, so a retried say is stored
once. ``sender`` is the hash of the client's secret token (``gateway.session.sender_of``):
someone else's say with the same room, nick and client_msg_id is another message.

An entry is created when a say is first published (with its future, so a retry that arrives
while the broker has not confirmed yet waits for the same outcome) and when a message is
delivered from the broker (so a retry reaching this gateway after the original was said
through another gateway gets the original id). A publish that failed without a confirm
keeps its entry: the broker may have routed it, so the retry is published again under the
same id, which history and the other gateways recognise.

The cache holds every say of the last ``ttl_s`` (10 minutes by default), so its entries are
kept small: the four key strings are stored as one 16-byte digest (a collision needs ~2^64
entries; the cache holds at most ``max_entries``), the entry has slots. 673 -> ~300 bytes
per entry, measured with tracemalloc (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[str, str, str, str]  # room, nick, sender, client_msg_id


@dataclass(slots=True)
class Entry:
    message_id: str
    ts: int
    expires: float
    # Set while a publish waits for its confirm; None once settled either way.
    confirmed: asyncio.Future[None] | None = None
    accepted: bool = False  # the broker confirmed it: retries are answered from here
    delivered: bool = False  # shown to this gateway's members already


class IdempotencyCache:
    def __init__(
        self, ttl_s: float, max_entries: int = 200_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        digest = _digest(key)
        entry = self._entries.get(digest)
        if entry is not None and entry.expires < self._clock():
            del self._entries[digest]
            return None
        return entry

    def put(self, key: Key, entry: Entry) -> None:
        digest = _digest(key)
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        self._prune()

    def remember(self, key: Key, message_id: str, ts: int) -> Entry:
        """A message that came from the broker: accepted, and delivered here now."""
        entry = Entry(message_id, ts, self._clock() + self._ttl, accepted=True, delivered=True)
        self.put(key, entry)
        return entry

    def start(self, key: Key, message_id: str, ts: int) -> Entry:
        """A say about to be published for the first time."""
        entry = Entry(message_id, ts, self._clock() + self._ttl)
        self.put(key, entry)
        return entry

    def _prune(self) -> None:
        now = self._clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires >= now and len(self._entries) <= self._max:
                break
            del self._entries[key]


def _digest(key: Key) -> bytes:
    # Each field's length goes in with it, so no two different keys hash the same input.
    text = "".join(f"{len(field)}:{field}" for field in key)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()
