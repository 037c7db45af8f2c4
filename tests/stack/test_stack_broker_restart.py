"""RabbitMQ restarted under load: services recover alone, no false ack, nothing acked lost.

Two users stream through nginx; RabbitMQ is stopped, left down for a few seconds and started
again. Counted afterwards: /readyz of history and both gateways went 503 then 200 again;
every say sent while the broker was certainly down was answered ``unavailable`` (never
``ack``); every acked message (before, during the retry loop, after) is stored once under
its acked id; after recovery the users hear each other live again (bindings restored).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from chatstack.devstack.stack import Stack
from stack_harness import (
    Chatter,
    ReadinessLog,
    assert_acked_stored_once,
    talk,
    unique_room,
    wait_history_has,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

BEFORE_S = 2.0
DOWN_S = 3.0
AFTER_S = 3.0
AFTER_DEADLINE_S = 30.0
LATE_ACKS = 3


def acked_after(chatter: Chatter, ready_at: float) -> dict[str, str]:
    """The chatter's says first sent after the services were ready again, and acked."""
    return {c: i for c, i in chatter.acked.items()
            if any(a.cmid == c and a.sent_at > ready_at + 0.5 for a in chatter.attempts)}  # fmt: skip


async def scenario(stack: Stack) -> None:
    room = unique_room("broker-restart")
    ada, bob = Chatter(stack.url, "ada", room), Chatter(stack.url, "bob", room)
    await ada.connect()
    await bob.connect()
    stop = asyncio.Event()
    with ReadinessLog([stack.history, *stack.gateways]) as readiness:
        streams = [asyncio.create_task(talk(c, stop, c.name)) for c in (ada, bob)]
        await asyncio.sleep(BEFORE_S)
        stopping_at = time.time()
        await asyncio.to_thread(stack.rabbitmq.stop)
        down_at = time.time()  # from here the broker is certainly gone ...
        await asyncio.sleep(DOWN_S)
        starting_at = time.time()  # ... until here
        await asyncio.to_thread(stack.rabbitmq.start)
        ready_at = await asyncio.to_thread(readiness.wait_all_ready)
        await asyncio.sleep(AFTER_S)
        # Reconnecting (every socket is closed with 1012 once the broker is back) takes
        # longer on a busy machine: talk on until ada has had a few acks after recovery.
        deadline = time.time() + AFTER_DEADLINE_S
        while len(acked_after(ada, ready_at)) < LATE_ACKS and time.time() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*streams)
    await asyncio.sleep(0.5)

    acked = {**{ada.texts[c]: i for c, i in ada.acked.items()},
             **{bob.texts[c]: i for c, i in bob.acked.items()}}  # fmt: skip
    stored = await wait_history_has(stack.url, room, set(acked))
    for chatter in (ada, bob):
        await chatter.close()

    # /readyz: 503 while the broker was away, 200 again afterwards, for every service.
    for instance, samples in readiness.samples.items():
        down = [t for t, status in samples if status == 503 and stopping_at <= t]
        assert down, f"{instance}: /readyz never answered 503 while RabbitMQ was down"
        assert any(status == 200 and t > down[-1] for t, status in samples), (
            f"{instance}: /readyz did not come back to 200"
        )
    attempts = ada.attempts + bob.attempts
    # Says sent while the broker was certainly down: `unavailable`, never an ack.
    while_down = [a for a in attempts if down_at <= a.sent_at <= starting_at]
    assert while_down, (
        "no say was sent while the broker was down (the test did not test)"
    )
    false_acks = [a for a in while_down if a.answer == "ack"]
    assert not false_acks, f"acked while RabbitMQ was down: {false_acks}"
    assert {a.answer for a in while_down} == {"unavailable"}, Counter(
        a.answer for a in while_down
    )
    # Acked before the restart, and everything acked at all: stored once, under its acked id.
    before = [a for a in attempts if a.answer == "ack" and a.answered_at < stopping_at]
    assert len(before) >= 5, f"only {len(before)} acks before the restart"
    assert_acked_stored_once(acked, stored)
    # After recovery the gateways rebound their queues: live delivery across users again.
    late = acked_after(ada, ready_at)
    assert len(late) >= LATE_ACKS, (
        f"only {len(late)} of ada's says acked after recovery"
    )
    assert set(late.values()) <= set(bob.live), (
        "bob did not get ada's messages live after recovery"
    )
    print(
        f"broker restart: acked {len(acked)} (ada {len(ada.acked)}, bob {len(bob.acked)}),"
        f" sent while down {len(while_down)} (all unavailable), stored {len(stored)},"
        f" down {starting_at - down_at:.1f} s, services ready {ready_at - starting_at:.1f} s"
        " after the broker start began"
    )


def test_broker_restart_under_load_no_false_ack_nothing_lost(stack: Stack) -> None:
    asyncio.run(scenario(stack))
