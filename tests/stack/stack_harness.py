"""A chat user that keeps talking through failures, as the browser client does, with books.

It reuses chat-probe's websocket client (``chatstack.probe.client.ChatClient``) and history
helpers, adds what docs/protocol.md asks of a real client — reconnect through nginx, join
again, resend unacked ``say``s with the same ``client_msg_id``, recover missed messages with
``after=`` — and records everything the failure tests count: every attempt and its answer,
acks, messages received live, messages obtained by recovery.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chatstack.devstack import contract as contract_mod
from chatstack.probe.client import ChatClient
from chatstack.probe.http import page_fetcher
from chatstack.probe.recovery import RoomLog, fetch_after, recover
from chatstack.probe.report import FlowFailed
from chatstack.probe.target import Target

CONTRACT = contract_mod.load()
OVERLAP_MS = int(CONTRACT["protocol"]["recovery_overlap_ms"])
PAGE_MAX = int(CONTRACT["protocol"]["page_limit_max"])
RECHECK_MS = int(CONTRACT["protocol"]["recovery_recheck_ms"])
RETRY_PAUSE_S = 0.3  # docs/protocol.md: after `unavailable`, retry after a pause
RECONNECT_PAUSE_S = 0.2


@dataclass
class Attempt:
    """One ``say`` frame sent: when (monotonic), and what came back first."""

    sent_at: float
    cmid: str
    answer: str  # "ack", an error code, or "closed"
    answered_at: float


@dataclass
class Chatter:
    url: str
    name: str
    room: str
    timeout: float = 30.0
    client: ChatClient | None = None
    instances: list[str] = field(
        default_factory=list
    )  # welcome.instance per connection
    attempts: list[Attempt] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # client_msg_id -> message id
    texts: dict[str, str] = field(default_factory=dict)  # client_msg_id -> text
    live: Counter[str] = field(
        default_factory=Counter
    )  # message ids received as frames
    recovered: set[str] = field(
        default_factory=set
    )  # message ids obtained from history
    log: RoomLog = field(default_factory=RoomLog)
    # The user's secret across its connections: retries after a reconnect dedupe.
    client_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # Recoveries run beside the chat, as in the browser: says do not wait for history.
    _recoveries: list[asyncio.Task[None]] = field(default_factory=list)
    _harvested: int = 0
    _count: int = 0

    @property
    def target(self) -> Target:
        return Target(base_url=self.url, origin=self.url, timeout=self.timeout)

    @property
    def reconnects(self) -> int:
        return max(0, len(self.instances) - 1)

    @property
    def received(self) -> set[str]:
        """Every message id this user has had in front of it, live or by recovery."""
        self.harvest()
        return set(self.live) | self.recovered

    async def connect(self) -> None:
        """Connect through nginx and join; after a drop, recover what was missed."""
        resume_from = self.log.newest
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                client = await ChatClient.connect(self.target, self.name)
                await client.join(self.room, self.name, self.client_token)
                break
            except FlowFailed:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RECONNECT_PAUSE_S)
        self.client = client
        self._harvested = 0
        self.instances.append(client.instance)
        if len(self.instances) > 1:
            self._recoveries.append(asyncio.create_task(self.recover(resume_from)))

    async def settle(self) -> None:
        """Wait for every recovery started so far (their errors are raised here)."""
        await asyncio.gather(*self._recoveries)

    async def recover(self, resume_from: str | None = None) -> None:
        """Read history after (newest shown - overlap) until it answered live twice, as
        the browser client does."""
        start = resume_from if resume_from is not None else self.log.newest
        found = await recover(
            page_fetcher(self.target, self.room),
            self.log,
            start,
            OVERLAP_MS,
            PAGE_MAX,
            recheck_ms=RECHECK_MS,
            settle_timeout_s=self.timeout,
        )
        self.recovered.update(m["id"] for m in found)

    def harvest(self) -> None:
        """Move newly arrived message frames of the current connection into the books."""
        if self.client is None:
            return
        frames = self.client.frames
        for frame in frames[self._harvested :]:
            if frame["type"] == "message" and frame.get("room") == self.room:
                self.live[frame["id"]] += 1
                self.log.add(frame["id"])
        self._harvested = len(frames)

    async def say(self, text: str) -> str:
        """Say until acked: pause and resend on ``unavailable``, reconnect on a dropped socket."""
        self._count += 1
        cmid = f"{self.name}-{secrets.token_hex(4)}-{self._count}"
        text = f"{text} [{cmid}]"  # unique text: history entries map back to their say
        self.texts[cmid] = text
        deadline = time.monotonic() + 3 * self.timeout
        while time.monotonic() < deadline:
            if self.client is None or self.client.closed:
                self.harvest()
                await self.connect()
            assert self.client is not None
            since = self.client.mark()
            sent_at = time.monotonic()
            try:
                await self.client.send(
                    {
                        "type": "say",
                        "room": self.room,
                        "text": text,
                        "client_msg_id": cmid,
                    }
                )
                frame = await self.client.wait_for(
                    lambda f: (
                        f["type"] == "error"
                        or (f["type"] == "ack" and f.get("client_msg_id") == cmid)
                    ),
                    f"ack of {cmid}",
                    since=since,
                    fail_on_error=False,
                )
            except FlowFailed:
                if not self.client.closed:
                    raise
                self.attempts.append(Attempt(sent_at, cmid, "closed", time.monotonic()))
                continue
            self.harvest()
            if frame["type"] == "ack":
                self.attempts.append(Attempt(sent_at, cmid, "ack", time.monotonic()))
                self.acked[cmid] = str(frame["id"])
                return self.acked[cmid]
            code = str(frame.get("code"))
            self.attempts.append(Attempt(sent_at, cmid, code, time.monotonic()))
            if code != "unavailable":
                raise AssertionError(f"{self.name}: say {cmid} refused with {frame!r}")
            await asyncio.sleep(RETRY_PAUSE_S)
        raise AssertionError(
            f"{self.name}: say {cmid} not acked within {3 * self.timeout:.0f} s"
        )

    async def close(self) -> None:
        await self.settle()
        self.harvest()
        if self.client is not None:
            await self.client.close()


async def talk(
    chatter: Chatter, until: asyncio.Event, label: str, min_gap_s: float = 0.15
) -> None:
    """A steady stream: say, wait for the ack, pause a little, until ``until`` is set."""
    n = 0
    while not until.is_set():
        n += 1
        await chatter.say(f"{label} {n}")
        await asyncio.sleep(min_gap_s)


async def room_history(
    url: str, room: str, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Every stored message of ``room``, through nginx's /api/."""
    target = Target(base_url=url, origin=url, timeout=timeout)
    return (await fetch_after(page_fetcher(target, room), "0", PAGE_MAX)).messages


async def wait_history_has(
    url: str, room: str, texts: set[str], timeout: float = 45.0
) -> list[dict[str, Any]]:
    """Poll history until every text is stored (history may still be catching up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = await room_history(url, room)
        except FlowFailed:
            stored = []
        if texts <= {m["text"] for m in stored} or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(0.5)


def assert_acked_stored_once(
    acked: dict[str, str], stored: list[dict[str, Any]], *, nothing_else: bool = False
) -> None:
    """History holds every acked message (by text) exactly once, under the id its sender was
    acked with; with ``nothing_else``, also nothing that was never acked."""
    counts = Counter(m["text"] for m in stored)
    missing = set(acked) - set(counts)
    assert not missing, (
        f"{len(missing)} acked messages missing from history: {sorted(missing)[:5]}"
    )
    if nothing_else:
        extra = set(counts) - set(acked)
        assert not extra, f"stored but never acked: {sorted(extra)[:5]}"
    assert all(counts[t] == 1 for t in acked), [t for t in acked if counts[t] > 1]
    stored_ids = {m["text"]: m["id"] for m in stored}
    wrong = {t: (i, stored_ids[t]) for t, i in acked.items() if stored_ids[t] != i}
    assert not wrong, f"acked id differs from the stored one: {wrong}"


def unique_room(flow: str) -> str:
    return f"stack-{flow}-{secrets.token_hex(4)}"
