"""Chat users that keep talking through failures, as the browser client does, with books.

``Chatter`` reuses the probe's websocket client and adds what docs/protocol.md asks of a real
client: reconnect through the public origin (after a close, or after an answer that never
came, as when a gateway's machine dies), join again, resend an unacked ``say`` with the same
``client_msg_id``, and recover missed messages with ``after=``. It records every attempt and
its answer, acks, messages received live and messages obtained by recovery.

The ``traffic`` flow (``chat-probe traffic``) runs several of them in one room until told to
stop, then checks the books; the stack tests and the NixOS VM tests break a gateway or the
broker meanwhile. Attempt times are wall-clock (``time.time()``) so a test can compare them
with ``date +%s.%N`` taken on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chatstack import contract

from .client import ChatClient
from .http import page_fetcher
from .recovery import RoomLog, fetch_after, recover
from .report import FlowFailed, Step
from .target import Target, unique_room

RETRY_PAUSE_S = 0.3  # docs/protocol.md: after `unavailable`, retry after a pause
RECONNECT_PAUSE_S = 0.2
# How long one say (or one reconnect) keeps retrying before the flow fails: longer than a
# broker restart or a gateway host rebooting.
GIVE_UP_S = 180.0
DEFAULT_TALKERS = 2
GAP_S = 0.15  # pause between a talker's ack and its next say
STOP_POLL_S = 0.2


def _protocol(key: str) -> int:
    return int(contract.section("protocol")[key])


@dataclass
class Attempt:
    """One ``say`` frame sent: when (wall clock), and what came back first."""

    talker: str
    cmid: str
    sent_at: float
    answer: str  # "ack", an error code, "closed" (socket dropped) or "timeout" (no answer)
    answered_at: float
    instance: str


Listener = Callable[[dict[str, Any]], None]


@dataclass
class Chatter:
    url: str
    name: str
    room: str
    timeout: float = 30.0
    origin: str | None = None  # default: the origin of url
    give_up_s: float = GIVE_UP_S
    on_event: Listener | None = None
    client: ChatClient | None = None
    instances: list[str] = field(default_factory=list)  # welcome.instance per connection
    attempts: list[Attempt] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # client_msg_id -> message id
    texts: dict[str, str] = field(default_factory=dict)  # client_msg_id -> text
    live: Counter[str] = field(default_factory=Counter)  # message ids received as frames
    recovered: set[str] = field(default_factory=set)  # message ids obtained from history
    log: RoomLog = field(default_factory=RoomLog)
    # The user's secret across its connections (docs/protocol.md, client_token): a say
    # retried after a reconnect is recognised as the same say.
    client_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # Recoveries run beside the chat, as in the browser: says do not wait for history.
    _recoveries: list[asyncio.Task[None]] = field(default_factory=list)
    _harvested: int = 0
    _count: int = 0

    @property
    def target(self) -> Target:
        return Target(base_url=self.url, origin=self.origin or self.url, timeout=self.timeout)

    @property
    def reconnects(self) -> int:
        return max(0, len(self.instances) - 1)

    @property
    def received(self) -> set[str]:
        """Every message id this user has had in front of it, live or by recovery."""
        self.harvest()
        return set(self.live) | self.recovered

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event({"talker": self.name, **event})

    async def connect(self) -> None:
        """Connect through the origin and join; after a drop, recover what was missed."""
        resume_from = self.log.newest
        deadline = time.monotonic() + self.give_up_s
        while True:
            try:
                client = await ChatClient.connect(self.target, self.name)
                try:
                    await client.join(self.room, self.name, self.client_token)
                except FlowFailed:
                    await client.close()
                    raise
                break
            except FlowFailed:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RECONNECT_PAUSE_S)
        self.client = client
        self._harvested = 0
        self.instances.append(client.instance)
        self._emit({"event": "connected", "instance": client.instance, "at": time.time()})
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
            _protocol("recovery_overlap_ms"),
            _protocol("page_limit_max"),
            recheck_ms=_protocol("recovery_recheck_ms"),
            settle_timeout_s=self.give_up_s,
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

    def _record(self, cmid: str, sent_at: float, answer: str, instance: str) -> None:
        attempt = Attempt(self.name, cmid, sent_at, answer, time.time(), instance)
        self.attempts.append(attempt)
        self._emit({"event": "say", **asdict(attempt)})

    async def _drop(self) -> None:
        """Give up on a connection that stopped answering (its gateway's machine died)."""
        if self.client is not None:
            self.harvest()
            await self.client.close()
            self.client = None

    async def say(self, text: str) -> str:
        """Say until acked: pause and resend on ``unavailable``, reconnect on a dropped or
        silent socket, always with the same client_msg_id."""
        self._count += 1
        cmid = f"{self.name}-{secrets.token_hex(4)}-{self._count}"
        text = f"{text} [{cmid}]"  # unique text: history entries map back to their say
        self.texts[cmid] = text
        deadline = time.monotonic() + self.give_up_s
        while time.monotonic() < deadline:
            if self.client is None or self.client.closed:
                self.harvest()
                await self.connect()
            client = self.client
            assert client is not None
            since = client.mark()
            sent_at = time.time()
            try:
                await client.send(
                    {"type": "say", "room": self.room, "text": text, "client_msg_id": cmid}
                )
                frame = await client.wait_for(
                    lambda f: (
                        f["type"] == "error"
                        or (f["type"] == "ack" and f.get("client_msg_id") == cmid)
                    ),
                    f"ack of {cmid}",
                    since=since,
                    fail_on_error=False,
                )
            except FlowFailed:
                self._record(
                    cmid, sent_at, "closed" if client.closed else "timeout", client.instance
                )
                await self._drop()
                continue
            self.harvest()
            if frame["type"] == "ack":
                self._record(cmid, sent_at, "ack", client.instance)
                self.acked[cmid] = str(frame["id"])
                return self.acked[cmid]
            code = str(frame.get("code"))
            self._record(cmid, sent_at, code, client.instance)
            if code != "unavailable":
                raise FlowFailed(f"{self.name}: say {cmid} refused with {frame!r}")
            await asyncio.sleep(RETRY_PAUSE_S)
        raise FlowFailed(f"{self.name}: say {cmid} not acked within {self.give_up_s:.0f} s")

    async def close(self) -> None:
        await self.settle()
        self.harvest()
        if self.client is not None:
            await self.client.close()


async def talk(chatter: Chatter, until: asyncio.Event, label: str, gap_s: float = GAP_S) -> None:
    """A steady stream: say, wait for the ack, pause a little, until ``until`` is set."""
    n = 0
    while not until.is_set():
        n += 1
        await chatter.say(f"{label} {n}")
        await asyncio.sleep(gap_s)


async def room_history(target: Target, room: str) -> list[dict[str, Any]]:
    """Every stored message of ``room``, through the origin's /api/."""
    return (
        await fetch_after(page_fetcher(target, room), "0", _protocol("page_limit_max"))
    ).messages


async def wait_history_has(
    target: Target, room: str, texts: set[str], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Poll history until every text is stored (history may still be catching up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = await room_history(target, room)
        except FlowFailed:
            stored = []
        if texts <= {m["text"] for m in stored} or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(0.5)


def check_acked_stored_once(
    acked: dict[str, str], stored: list[dict[str, Any]], *, nothing_else: bool = False
) -> None:
    """History holds every acked message (by text) exactly once, under the id its sender was
    acked with; with ``nothing_else``, also nothing that was never acked. FlowFailed if not."""
    counts = Counter(m["text"] for m in stored)
    missing = set(acked) - set(counts)
    if missing:
        raise FlowFailed(
            f"{len(missing)} acked messages missing from history: {sorted(missing)[:5]}"
        )
    if nothing_else:
        extra = set(counts) - set(acked)
        if extra:
            raise FlowFailed(f"stored but never acked: {sorted(extra)[:5]}")
    twice = [t for t in acked if counts[t] > 1]
    if twice:
        raise FlowFailed(f"{len(twice)} acked messages stored more than once: {twice[:5]}")
    stored_ids = {m["text"]: m["id"] for m in stored}
    wrong = {t: (i, stored_ids[t]) for t, i in acked.items() if stored_ids[t] != i}
    if wrong:
        raise FlowFailed(f"acked id differs from the stored one: {wrong}")


def acked_texts(chatters: list[Chatter]) -> dict[str, str]:
    """text -> acked message id, over every chatter."""
    return {c.texts[cmid]: mid for c in chatters for cmid, mid in c.acked.items()}


# --------------------------------------------------------------------------- the flow


class EventLog:
    """JSON lines, one per event, flushed at once: a test reads them while the flow runs."""

    def __init__(self, out: TextIO | None) -> None:
        self._out = out

    def __call__(self, event: dict[str, Any]) -> None:
        if self._out is not None:
            self._out.write(json.dumps(event, sort_keys=True) + "\n")
            self._out.flush()


async def _wait_for_stop(until: Path | None, duration_s: float | None) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not (until is not None and until.exists()):
        if deadline is not None and time.monotonic() >= deadline:
            return
        await asyncio.sleep(STOP_POLL_S)


async def run(
    target: Target,
    step: Step,
    *,
    until: Path | None = None,
    duration_s: float | None = None,
    talkers: int = DEFAULT_TALKERS,
    events: TextIO | None = None,
) -> None:
    """``talkers`` users chat in one fresh room until ``until`` exists or ``duration_s`` has
    passed, riding out whatever breaks meanwhile; then every acked message must be in history
    once under its acked id (and nothing else), and every talker must have seen every other
    talker's acked messages, live or by recovery, none twice live."""
    if until is None and duration_s is None:
        raise ValueError("traffic needs a stop file or a duration")
    log = EventLog(events)
    room = unique_room("traffic")
    chatters = [
        Chatter(
            target.base_url,
            f"t{n}",
            room,
            timeout=target.timeout,
            origin=target.origin,
            on_event=log,
        )
        for n in range(1, talkers + 1)
    ]
    try:
        for chatter in chatters:
            await chatter.connect()
        first = sorted({c.instances[0] for c in chatters})
        step(f"{talkers} talkers joined one room on {len(first)} gateway instances")

        stop = asyncio.Event()
        streams = [asyncio.create_task(talk(c, stop, c.name)) for c in chatters]
        waiter = asyncio.create_task(_wait_for_stop(until, duration_s))
        try:
            await asyncio.wait([waiter, *streams], return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            await asyncio.gather(*streams)  # a talker that gave up fails the flow here
        finally:
            for task in [waiter, *streams]:
                task.cancel()  # no-op for the finished ones; the others stop with the flow
        for chatter in chatters:
            await chatter.settle()

        attempts = [a for c in chatters for a in c.attempts]
        answers = Counter(a.answer for a in attempts)
        reconnects = sum(c.reconnects for c in chatters)
        acked = acked_texts(chatters)
        step(
            f"{len(acked)} says acked; answers: "
            + ", ".join(f"{answer} {n}" for answer, n in sorted(answers.items()))
            + f"; {reconnects} reconnects"
        )

        stored = await wait_history_has(target, room, set(acked))
        check_acked_stored_once(acked, stored, nothing_else=True)
        step(f"history holds each of the {len(acked)} acked messages once, under its acked id")

        for chatter in chatters:
            received = chatter.received
            for other in chatters:
                missed = set(other.acked.values()) - received
                if other is not chatter and missed:
                    raise FlowFailed(
                        f"{chatter.name} missed {len(missed)} acked messages of {other.name}"
                    )
            twice = [i for i, n in chatter.live.items() if n > 1]
            if twice:
                raise FlowFailed(f"{chatter.name} got {len(twice)} messages twice live")
        recovered = sum(len(c.recovered) for c in chatters)
        step(
            f"every talker saw every other's acked messages ({recovered} by recovery),"
            " none twice live"
        )
        log(
            {
                "event": "summary",
                "acked": len(acked),
                "stored": len(stored),
                "answers": dict(answers),
                "talkers": {
                    c.name: {
                        "instances": c.instances,
                        "acked": len(c.acked),
                        "recovered": len(c.recovered),
                    }
                    for c in chatters
                },
            }
        )
    finally:
        await asyncio.gather(*(c.close() for c in chatters), return_exceptions=True)
