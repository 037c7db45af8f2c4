"""History down: chat goes on, and afterwards nothing acked is missing from history.

chat-history is stopped (SIGTERM) while two users keep talking: says are still acked (the
gateways only need RabbitMQ) and delivered live, the durable quorum queue holds the messages,
and the history API answers 502 through nginx. When chat-history starts again it drains the
queue: every acked message is stored once, under its acked id.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest
from chatstack.devstack.stack import Stack
from stack_harness import (
    Chatter,
    assert_acked_stored_once,
    talk,
    unique_room,
    wait_history_has,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


def api_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


async def scenario(stack: Stack) -> None:
    room = unique_room("history-down")
    ada, bob = Chatter(stack.url, "ada", room), Chatter(stack.url, "bob", room)
    await ada.connect()
    await bob.connect()
    stop = asyncio.Event()
    streams = [asyncio.create_task(talk(c, stop, c.name)) for c in (ada, bob)]
    await asyncio.sleep(1.5)
    await asyncio.to_thread(stack.stop_history)
    down_at = time.time()
    api = f"{stack.url}/api/rooms/{room}/messages"
    status_while_down = await asyncio.to_thread(api_status, api)
    await asyncio.sleep(3.0)
    up_at = time.time()
    await asyncio.to_thread(stack.start_history)
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.gather(*streams)

    acked = {**{ada.texts[c]: i for c, i in ada.acked.items()},
             **{bob.texts[c]: i for c, i in bob.acked.items()}}  # fmt: skip
    stored = await wait_history_has(stack.url, room, set(acked))
    for chatter in (ada, bob):
        await chatter.close()

    assert status_while_down == 502, (
        f"history API answered {status_while_down} while down"
    )
    while_down = [
        a for a in ada.attempts + bob.attempts
        if a.answer == "ack" and down_at <= a.sent_at and a.answered_at <= up_at
    ]  # fmt: skip
    assert len(while_down) >= 5, (
        f"only {len(while_down)} says acked while history was down"
    )
    assert_acked_stored_once(acked, stored)
    # Live delivery never depended on history.
    assert set(ada.acked.values()) <= set(bob.live)
    assert set(bob.acked.values()) <= set(ada.live)
    print(
        f"history down: acked {len(acked)}, acked while down {len(while_down)},"
        f" stored {len(stored)}"
    )


def test_history_down_nothing_acked_is_missing(stack: Stack) -> None:
    asyncio.run(scenario(stack))
