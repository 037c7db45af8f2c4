"""Missed-message recovery as docs/protocol.md ("Exactly once → Recovery") describes it.

A client keeps, per room, the ids it has shown and the newest one. After a reconnect it
reads history after a *floor id* — the smallest id of (time of its newest id - overlap) —
page by page until a page is shorter than the limit, and keeps only ids it has not shown.
The overlap covers gateway clocks that differ and messages still in flight; the id set
makes re-reading the overlap harmless. History may lag behind the broker (it was cut off,
or is draining what queued meanwhile), so the client reads again every recheck interval
until two reads in a row found history ``live``.

The id arithmetic is written here from the ULID spec rather than imported from the
services (chatstack.ids): the probe checks the services, so it must not share their bugs.
A property test checks that both agree.
"""

from __future__ import annotations

import asyncio
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


@dataclass(frozen=True)
class Page:
    """One history answer: its messages, and whether history was consuming from the broker."""

    messages: list[Message]
    live: bool


# fetch_page(after, limit) -> one history page (after=None: the newest page).
FetchPage = Callable[[str | None, int], Awaitable[Page]]


class RecoveryError(Exception):
    """History answered something the protocol rules out (order, range, shape)."""


class HistoryNotLive(RecoveryError):
    """History stayed cut off from the broker for the whole settle timeout. ``found`` is
    what was recovered anyway (already recorded as shown): the caller must show it."""

    def __init__(self, found: list[Message], waited_s: float) -> None:
        super().__init__(
            f"history did not answer live: true twice in a row within {waited_s:g}s; "
            f"recovered {len(found)} message(s), messages still queued for history may be missing"
        )
        self.found = found


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


async def fetch_after(fetch_page: FetchPage, after: str, limit: int) -> Page:
    """Every stored message with an id greater than ``after``, following pages; live only
    when every page was."""
    collected: list[Message] = []
    live = True
    while True:
        page = await fetch_page(after, limit)
        check_page(page.messages, after, limit)
        collected.extend(page.messages)
        live = live and page.live
        if len(page.messages) < limit:
            return Page(collected, live)
        after = page.messages[-1]["id"]


def next_pause(previous_ms: float, live: bool, recheck_ms: float) -> float:
    """The pause before the next read: the recheck interval after a live answer (two live
    answers that far apart end the recovery), doubling up to 4 times it while history is
    cut off, so an outage is not met with a read per interval per client."""
    if live:
        return recheck_ms
    return min(max(previous_ms, recheck_ms / 2) * 2, 4 * recheck_ms)


async def recover_once(
    fetch_page: FetchPage, log: RoomLog, resume_from: str | None, overlap_ms: int, limit: int
) -> Page:
    """One read: the messages not shown yet (now recorded as shown), and whether history
    answered live.

    ``resume_from`` is the newest id shown *before* the reconnect (``log.newest`` taken
    then): live messages that arrive after the re-join must not move the floor forward,
    or an absence longer than the overlap would lose everything older than that. Without
    it (nothing shown in the room yet) the newest page stands in, as on a page load.
    """
    if resume_from is None:
        page = await fetch_page(None, limit)
        check_page(page.messages, None, limit)
    else:
        page = await fetch_after(fetch_page, recovery_floor(resume_from, overlap_ms), limit)
    return Page(log.add_new(page.messages), page.live)


async def recover(
    fetch_page: FetchPage,
    log: RoomLog,
    resume_from: str | None,
    overlap_ms: int,
    limit: int,
    *,
    recheck_ms: int = 0,
    settle_timeout_s: float = 60.0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> list[Message]:
    """The messages a reconnecting client has not shown yet, in id order of each read.

    With ``recheck_ms`` (the protocol's ``recovery_recheck_ms``) it reads again until two
    reads in a row answered live (see :func:`next_pause`), so a message acked before the
    re-join but not yet stored by history is not lost; :class:`HistoryNotLive` after
    ``settle_timeout_s``. Without it, one read (for callers that know history is caught
    up). ``sleep`` takes seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_timeout_s
    found: list[Message] = []
    live_before = False
    pause_ms = 0.0
    while True:
        read = await recover_once(fetch_page, log, resume_from, overlap_ms, limit)
        found += read.messages
        if recheck_ms <= 0 or (read.live and live_before):
            return found
        if loop.time() > deadline:
            raise HistoryNotLive(found, settle_timeout_s)
        live_before = read.live
        pause_ms = next_pause(pause_ms, read.live, recheck_ms)
        await sleep(pause_ms / 1000)
