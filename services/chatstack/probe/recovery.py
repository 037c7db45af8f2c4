"""Missed-message recovery as docs/protocol.md ("Exactly once → Recovery") describes it.

A client keeps, per room, the ids it has shown and the newest one. After a reconnect it
reads history after a *floor id* — the smallest id of (time of its newest id - overlap) —
page by page until a page is shorter than the limit, and keeps only ids it has not shown.
The overlap covers gateway clocks that differ and messages still in flight; the id set
makes re-reading the overlap harmless.

The id arithmetic is written here from the ULID spec rather than imported from the
services (chatstack.ids): the probe checks the services, so it must not share their bugs.
A property test checks that both agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Crockford base32 as the ULID spec uses it (no I, L, O, U).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
ID_LENGTH = 26
TIME_CHARS = 10
MAX_TIME_MS = (1 << 48) - 1

Message = dict[str, Any]
# fetch_page(after, limit) -> the messages of one history page (after=None: newest page).
FetchPage = Callable[[str | None, int], Awaitable[list[Message]]]


class RecoveryError(Exception):
    """History answered something the protocol rules out (order, range, shape)."""


def is_id(text: object) -> bool:
    return isinstance(text, str) and len(text) == ID_LENGTH and all(c in _VALUE for c in text)


def id_time_ms(message_id: str) -> int:
    """The millisecond timestamp in the first 10 characters of an id."""
    if len(message_id) < TIME_CHARS or any(c not in _VALUE for c in message_id[:TIME_CHARS]):
        raise ValueError(f"not a ULID: {message_id!r}")
    value = 0
    for char in message_id[:TIME_CHARS]:
        value = value * 32 + _VALUE[char]
    return value


def floor_id(time_ms: int) -> str:
    """The smallest id of millisecond ``time_ms`` (clamped to the ULID range)."""
    value = min(max(0, time_ms), MAX_TIME_MS)
    chars = []
    for _ in range(TIME_CHARS):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars)) + "0" * (ID_LENGTH - TIME_CHARS)


def recovery_floor(newest_id: str, overlap_ms: int) -> str:
    """Where to start reading history after a reconnect: newest id's time - overlap."""
    return floor_id(id_time_ms(newest_id) - overlap_ms)


@dataclass
class RoomLog:
    """What a client has shown in one room: the id set (dedupe) and the newest id."""

    seen: set[str] = field(default_factory=set)
    newest: str | None = None

    def add(self, message_id: str) -> bool:
        """Record an id; False when it was already shown (the caller must not show it)."""
        if message_id in self.seen:
            return False
        self.seen.add(message_id)
        if self.newest is None or message_id > self.newest:
            self.newest = message_id
        return True

    def add_new(self, messages: Iterable[Message]) -> list[Message]:
        """The messages not shown yet, in id order, each once; records them as shown."""
        return [m for m in sorted(messages, key=lambda m: str(m["id"])) if self.add(m["id"])]


def check_page(page: list[Message], after: str | None, limit: int) -> None:
    """A page must be in strictly increasing id order, after ``after``, within ``limit``."""
    if len(page) > limit:
        raise RecoveryError(f"page of {len(page)} messages exceeds limit={limit}")
    previous = after
    for message in page:
        message_id = message.get("id")
        if not isinstance(message_id, str) or not is_id(message_id):
            raise RecoveryError(f"message without a valid id: {message!r}")
        if previous is not None and not message_id > previous:
            raise RecoveryError(f"id {message_id} is not greater than {previous} (after={after})")
        previous = message_id


async def fetch_after(fetch_page: FetchPage, after: str, limit: int) -> list[Message]:
    """Every stored message with an id greater than ``after``, following pages."""
    collected: list[Message] = []
    while True:
        page = await fetch_page(after, limit)
        check_page(page, after, limit)
        collected.extend(page)
        if len(page) < limit:
            return collected
        after = page[-1]["id"]


async def recover(
    fetch_page: FetchPage, log: RoomLog, resume_from: str | None, overlap_ms: int, limit: int
) -> list[Message]:
    """The messages a reconnecting client has not shown yet, in id order.

    ``resume_from`` is the newest id shown *before* the reconnect (``log.newest`` taken
    then): live messages that arrive after the re-join must not move the floor forward,
    or an absence longer than the overlap would lose everything older than that. Without
    it (nothing shown in the room yet) the newest page stands in, as on a page load.
    """
    if resume_from is None:
        page = await fetch_page(None, limit)
        check_page(page, None, limit)
        return log.add_new(page)
    floor = recovery_floor(resume_from, overlap_ms)
    return log.add_new(await fetch_after(fetch_page, floor, limit))
