"""recovery: a client that was away obtains exactly what it missed, with ``after=``.

c sees a first message, disconnects while a and b talk, reconnects, joins again and runs
the recovery of docs/protocol.md (chatstack.probe.recovery): floor id from its newest id
minus ``protocol.recovery_overlap_ms``, pages, dedupe by id, and rereads (pausing
``protocol.recovery_recheck_ms``) until history answered live twice in a row. What it
shows after reconnecting (recovered + live) must be exactly the messages said while it
was away plus those said after it came back, none twice.
"""

from __future__ import annotations

from chatstack import contract

from ..client import Clients
from ..http import page_fetcher
from ..recovery import RoomLog, recover
from ..report import FlowFailed, Step
from ..target import Target, unique_room
from .common import wait_all_messages

MISSED = 6
# Small on purpose, so the recovery follows several pages.
PAGE_LIMIT = 3


async def run(target: Target, step: Step) -> None:
    room = unique_room("recovery")
    protocol = contract.section("protocol")
    overlap_ms = int(protocol["recovery_overlap_ms"])
    recheck_ms = int(protocol["recovery_recheck_ms"])
    fetch = page_fetcher(target, room)
    async with Clients(target) as clients:
        a = await clients.connect("a")
        b = await clients.connect("b")
        c = await clients.connect("c")
        for client in (a, b, c):
            await client.join(room, client.name)
        first = await a.say(room, "before c left")
        await c.wait_message(room, first)
        log = RoomLog()
        log.add_new(c.messages(room))
        await c.close()
        step("three clients joined; c saw the first message, then disconnected")

        missed: dict[str, str] = {}
        for n in range(MISSED):
            speaker = (a, b)[n % 2]
            text = f"said while c was away #{n}"
            missed[await speaker.say(room, text)] = text
        await wait_all_messages(a, room, missed)
        step(f"a and b said {MISSED} messages while c was away, all acked")

        c2 = await clients.connect("c")
        await c2.join(room, "c")
        live_text = "said after c came back"
        live = await a.say(room, live_text)
        await c2.wait_message(room, live)
        step("c reconnected, joined again and got a live message")

        # The newest id shown before the disconnect: the live message must not move the floor.
        resume_from = log.newest
        shown = log.add_new(c2.messages(room))
        shown += await recover(
            fetch,
            log,
            resume_from,
            overlap_ms,
            PAGE_LIMIT,
            recheck_ms=recheck_ms,
            settle_timeout_s=target.timeout,
        )
        shown += log.add_new(c2.messages(room))

        expected = {**missed, live: live_text}
        shown_ids = [m["id"] for m in shown]
        if len(shown_ids) != len(set(shown_ids)):
            raise FlowFailed("recovery showed a message twice")
        missing = expected.keys() - set(shown_ids)
        extra = set(shown_ids) - expected.keys()
        if missing or extra:
            raise FlowFailed(
                f"after reconnecting c got {len(shown_ids)} messages, expected {len(expected)}: "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        for message in shown:
            if message["text"] != expected[message["id"]]:
                raise FlowFailed(f"recovered message {message['id']} has text {message['text']!r}")
        step(
            f"recovered with after=<newest id - {overlap_ms} ms> in pages of {PAGE_LIMIT}: "
            f"exactly the {MISSED} missed messages plus the live one, none twice"
        )
        for client in (a, b, c2):
            client.check_healthy()
