"""abuse: every error code a client can provoke, the connection kept open after each;
sustained abuse closed with 1008; a bystander in the same room never disturbed.

Each code is provoked on its own connection, so the error frames of one check never add
up to the sustained-abuse limit (``limits.max_errors``, not announced to clients) of
another. After its error each connection must still work: its next ``say`` is acked and
reaches the bystander. Limits come from the ``welcome`` frame.

``unavailable`` is the one code a client cannot provoke (the broker must be away).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from chatstack import contract

from ..client import ChatClient, Clients, presence_of
from ..report import FlowFailed, Step
from ..target import Target, unique_room
from .common import check_exactly_once, settle

# Upper bound of invalid frames sent to provoke the 1008 close: far above any sane
# limits.max_errors, low enough to finish quickly when the close never comes.
SUSTAINED_MAX_FRAMES = 2000

# Paced joins sent at most to exhaust the join budget (limits.join_burst, not announced).
JOIN_FLOOD_MAX = 200

Provoke = Callable[[ChatClient, str], Awaitable[None]]


async def _bad_json(c: ChatClient, room: str) -> None:
    since = c.mark()
    await c.send_raw("{not json")
    await c.expect_error("bad_json", since)
    since = c.mark()
    await c.send_raw(b"\x00\xff binary")  # binary frames count as bad_json too
    await c.expect_error("bad_json", since)


async def _bad_frame(c: ChatClient, room: str) -> None:
    for raw in ('["join"]', '{"type": 5}'):
        since = c.mark()
        await c.send_raw(raw)
        await c.expect_error("bad_frame", since)


def _frame(frame: dict[str, object], code: str) -> Provoke:
    """Send ``frame`` (``"{room}"`` replaced by the flow's room), expect error ``code``."""

    async def provoke(c: ChatClient, room: str) -> None:
        since = c.mark()
        await c.send({k: (room if v == "{room}" else v) for k, v in frame.items()})
        await c.expect_error(code, since)

    return provoke


async def _text_too_long(c: ChatClient, room: str) -> None:
    limit = int(c.limits["max_text_bytes"])
    # Two-byte characters: short enough in characters, too long in UTF-8 bytes.
    text = "é" * (limit // 2 + 1)
    since = c.mark()
    await c.send(
        {"type": "say", "room": room, "text": text, "client_msg_id": c.new_client_msg_id()}
    )
    await c.expect_error("text_too_long", since)
    # The boundary itself is allowed.
    await c.say(room, "x" * limit)


async def _too_many_rooms(c: ChatClient, room: str) -> None:
    max_rooms = int(c.limits["max_rooms"])
    for n in range(max_rooms - 1):  # `room` is already joined
        await c.join(f"{room}-x{n}", c.name)
    since = c.mark()
    await c.send({"type": "join", "room": f"{room}-x{max_rooms}", "nick": c.name})
    await c.expect_error("too_many_rooms", since)


async def _nick_taken(c: ChatClient, room: str) -> None:
    # The bystander holds its nick in the room; without its client_token nobody gets it.
    since = c.mark()
    await c.send({"type": "join", "room": room, "nick": "bystander"})
    await c.expect_error("nick_taken", since)


async def _not_joined(c: ChatClient, room: str) -> None:
    other = f"{room}-elsewhere"
    frames = (
        {"type": "say", "room": other, "text": "hi", "client_msg_id": c.new_client_msg_id()},
        {"type": "leave", "room": other},
    )
    for frame in frames:
        since = c.mark()
        await c.send(frame)
        await c.expect_error("not_joined", since)


async def _rate_limited(c: ChatClient, room: str) -> None:
    """A burst of says beyond ``limits.burst``: some acked, the rest refused, none lost.

    A refused frame has no other effect, so exactly the acked says may be delivered.
    """
    burst = int(c.limits["burst"])
    sent = [c.new_client_msg_id() for _ in range(burst + 3)]
    since = c.mark()
    for cmid in sent:
        await c.send(
            {"type": "say", "room": room, "text": f"burst {cmid}", "client_msg_id": cmid},
            paced=False,
        )
    deadline = time.monotonic() + c.timeout
    while True:
        frames = c.frames[since:]
        acked = {f["client_msg_id"] for f in frames if f["type"] == "ack"}
        errors = [f for f in frames if f["type"] == "error"]
        if len(acked) + len(errors) >= len(sent) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    codes = {f.get("code") for f in errors}
    if codes != {"rate_limited"}:
        raise FlowFailed(
            f"{c.name}: {len(sent)} says at once (burst {burst}): "
            f"error codes {sorted(map(str, codes))}, expected only rate_limited"
        )
    if len(acked) + len(errors) != len(sent):
        raise FlowFailed(
            f"{c.name}: {len(sent)} says at once: {len(acked)} acks + {len(errors)} errors"
        )
    # Let the bucket refill before the "still works" say.
    await asyncio.sleep(2 / float(c.limits["rate_per_s"]))


async def _join_rate_limited(c: ChatClient, room: str) -> None:
    """Joins (each one tells a whole room) have a tighter budget than other frames: joins
    paced under ``limits.rate_per_s`` are refused once the join budget is spent."""
    for _ in range(JOIN_FLOOD_MAX):
        since = c.mark()
        # Joined already with this nick: the answer is our own presence again.
        await c.send({"type": "join", "room": room, "nick": c.name})
        frame = await c.wait_for(
            lambda f: f["type"] == "error" or presence_of(room, c.name, "join")(f),
            "answer to a repeated join",
            since=since,
            fail_on_error=False,
        )
        if frame["type"] == "error":
            if frame.get("code") != "join_rate_limited":
                raise FlowFailed(
                    f"{c.name}: paced joins: error code={frame.get('code')!r}, "
                    "expected join_rate_limited"
                )
            return
    raise FlowFailed(f"{c.name}: {JOIN_FLOOD_MAX} paced joins and none was join_rate_limited")


def _checks() -> list[tuple[str, Provoke]]:
    return [
        ("bad_json", _bad_json),
        ("bad_frame", _bad_frame),
        ("unknown_type", _frame({"type": "shout", "room": "{room}"}, "unknown_type")),
        ("bad_room", _frame({"type": "join", "room": "no spaces!", "nick": "x"}, "bad_room")),
        ("bad_nick", _frame({"type": "join", "room": "{room}", "nick": "bad nick!"}, "bad_nick")),
        (
            "bad_client_token",
            _frame(
                {"type": "join", "room": "{room}", "nick": "x", "client_token": "guessable"},
                "bad_client_token",
            ),
        ),
        (
            "bad_text",
            _frame(
                {"type": "say", "room": "{room}", "text": "", "client_msg_id": "k-1"}, "bad_text"
            ),
        ),
        ("text_too_long", _text_too_long),
        (
            "bad_client_msg_id",
            _frame(
                {"type": "say", "room": "{room}", "text": "hi", "client_msg_id": "not valid!"},
                "bad_client_msg_id",
            ),
        ),
        ("too_many_rooms", _too_many_rooms),
        ("nick_taken", _nick_taken),
        ("not_joined", _not_joined),
        ("rate_limited", _rate_limited),
        ("join_rate_limited", _join_rate_limited),
    ]


async def run(target: Target, step: Step) -> None:
    room = unique_room("abuse")
    checks = _checks()
    provokable = set(contract.error_codes()) - {"unavailable"}
    if provokable != {code for code, _ in checks}:
        raise FlowFailed(f"probe out of date: contract error codes {sorted(provokable)}")
    async with Clients(target) as clients:
        bystander = await clients.connect("bystander")
        await bystander.join(room, "bystander")
        delivered: set[str] = set()
        for code, provoke in checks:
            c = await clients.connect(f"abuser-{code}")
            await c.join(room, c.name)
            await provoke(c, room)
            still = await c.say(room, f"{code}: still connected")
            # Every acked say of this connection (the burst ones too) must reach the bystander.
            delivered |= {f["id"] for f in c.frames if f["type"] == "ack"}
            await bystander.wait_message(room, still)
            c.check_healthy()
            step(f"{code}: error frame with that code, connection kept and still works")

        c = await clients.connect("abuser-sustained")
        sent = 0
        while not c.closed and sent < SUSTAINED_MAX_FRAMES:
            try:
                await c.send({"type": "shout"}, paced=False)
            except FlowFailed:
                break  # closed between the check and the write
            sent += 1
            await asyncio.sleep(0)
        expected = int(contract.section("protocol")["close_policy_violation"])
        try:
            close_code = await c.wait_closed()
        except FlowFailed:
            raise FlowFailed(
                f"sustained abuse: connection still open after {sent} invalid frames, "
                f"expected close code {expected}"
            ) from None
        if close_code != expected:
            raise FlowFailed(
                f"sustained abuse ({sent} invalid frames): "
                f"close code {close_code}, expected {expected}"
            )
        step(f"sustained abuse: connection closed with {expected}")

        await settle()
        if bystander.errors():
            raise FlowFailed(f"bystander got an error frame: {bystander.errors()[0]!r}")
        bystander.check_healthy()
        check_exactly_once(bystander, room, delivered)
        mine = await bystander.say(room, "bystander still fine")
        await bystander.wait_message(room, mine)
        step("bystander in the same room: no error, still open, every accepted message once")
