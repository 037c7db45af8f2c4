"""Failover: kill -9 a gateway under a steady stream; nothing acked is lost or unseen.

Two users chat in one room through nginx, on different gateways. The gateway of one of them
is killed with SIGKILL (no drain). That user reconnects through nginx (passive failover puts
it on the surviving gateway), resends its unacked say with the same client_msg_id and
recovers what it missed from history. Afterwards, counted: every acked message is stored
once under its acked id, the other user saw each of them (live or by recovery), and the
stream kept flowing after the kill.
"""

from __future__ import annotations

import asyncio
import time

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

BEFORE_S = 2.0  # stream before the kill
AFTER_S = 4.0  # stream after it


async def pair_on_two_gateways(url: str, room: str) -> tuple[Chatter, Chatter]:
    """ada and bob connected to different gateways (nginx round-robins; retry a few times)."""
    ada = Chatter(url, "ada", room)
    await ada.connect()
    for _ in range(6):
        bob = Chatter(url, "bob", room)
        await bob.connect()
        if bob.instances[0] != ada.instances[0]:
            return ada, bob
        await bob.close()
    raise AssertionError("nginx never put two clients on different gateways")


async def scenario(stack: Stack) -> None:
    room = unique_room("failover")
    ada, bob = await pair_on_two_gateways(stack.url, room)
    victim = next(
        n for n, g in enumerate(stack.gateways, 1) if g.instance == ada.instances[0]
    )
    stop = asyncio.Event()
    streams = [asyncio.create_task(talk(c, stop, c.name)) for c in (ada, bob)]
    await asyncio.sleep(BEFORE_S)
    await asyncio.to_thread(stack.kill_gateway, victim)
    killed_at = time.time()
    await asyncio.sleep(AFTER_S)
    stop.set()
    await asyncio.gather(*streams)
    # ada's recovery after the reconnect rereads until history answered live twice.
    for chatter in (ada, bob):
        await chatter.settle()

    acked = {**{ada.texts[c]: i for c, i in ada.acked.items()},
             **{bob.texts[c]: i for c, i in bob.acked.items()}}  # fmt: skip
    stored = await wait_history_has(stack.url, room, set(acked))
    for chatter in (ada, bob):
        await chatter.close()

    # The kill really hit ada's connection, and nginx sent her to the other gateway.
    assert ada.reconnects == 1, ada.instances
    assert ada.instances[1] != ada.instances[0], ada.instances
    assert bob.reconnects == 0, bob.instances
    # The stream kept flowing on both sides after the kill.
    for chatter in (ada, bob):
        after = [
            a
            for a in chatter.attempts
            if a.answer == "ack" and a.answered_at > killed_at
        ]
        assert len(after) >= 3, f"{chatter.name}: only {len(after)} acks after the kill"
    # History: every acked message exactly once, under the id its sender was acked with,
    # and nothing that was never acked.
    assert_acked_stored_once(acked, stored, nothing_else=True)
    # Delivery: each saw every acked message of the other, live or by recovery, live once.
    assert set(ada.acked.values()) <= bob.received, "bob missed messages of ada"
    assert set(bob.acked.values()) <= ada.received, "ada missed messages of bob"
    for chatter in (ada, bob):
        twice = [i for i, n in chatter.live.items() if n > 1]
        assert not twice, f"{chatter.name} got messages twice live: {twice}"
    assert len(ada.acked) + len(bob.acked) >= 10, (len(ada.acked), len(bob.acked))
    print(
        f"failover: ada acked {len(ada.acked)} (instances {ada.instances}, recovered {len(ada.recovered)}), bob acked {len(bob.acked)}, stored {len(stored)}, attempts closed: {sum(a.answer == 'closed' for a in ada.attempts)}"
    )


def test_kill_9_a_gateway_under_load_loses_nothing(stack: Stack) -> None:
    asyncio.run(scenario(stack))
