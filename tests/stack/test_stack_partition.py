"""Partitions: one gateway, then history, cut off from RabbitMQ for 30 s under traffic.

The stack here is its own (``partition_stack``): history and each gateway run in a network
namespace of their own, joined to the host by a veth pair (chatstack.devstack.netns; why
namespaces rather than filtering by uid is written there). The cut is an nftables ``drop``
of the AMQPS port inside one namespace — both directions, no RST, no ICMP — so only AMQP
heartbeats can tell; nginx still reaches the service over HTTP.

Heartbeats are 5 s here (``broker.heartbeat_s``, a real setting; production keeps the
contract's 30 s): pika closes a connection that received nothing for one to two checks of
heartbeat + 5 s, so the services notice within 10-20 s, well inside the 30 s cut.

Gateway cut off: it goes not-ready (/readyz 503) during the cut, says sent there are
answered ``unavailable`` (a false ack would show up as an acked message missing from
history), after ``gateway.failover_after_s`` it closes its sockets with 1012 and refuses
handshakes with 503, so its user reconnects through nginx to the other gateway and keeps
talking; after healing it is ready again, and every acked message is stored once.

History cut off: chat goes on (acks need only RabbitMQ); history goes not-ready and its API
answers ``live: false``; after healing it catches up and every acked message is stored once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatstack.devstack import netns
from chatstack.devstack import stack as stack_mod
from chatstack.devstack.services import Service
from chatstack.devstack.stack import Stack
from stack_harness import (
    Chatter,
    ReadinessLog,
    assert_acked_stored_once,
    talk,
    unique_room,
    wait_history_has,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(400)]

CUT_S = 30.0
HEARTBEAT_S = 5
BROKER = {
    "heartbeat_s": HEARTBEAT_S,
    "reconnect_initial_s": 0.2,
    "reconnect_max_s": 2.0,
}


@pytest.fixture(scope="module")
def partition_stack() -> Iterator[Stack]:
    missing = stack_mod.missing_prerequisites()
    reason = f"missing system packages: {' '.join(missing)}" if missing else None
    reason = reason or netns.unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="chatstack-test-partition-"))
    base.chmod(0o711)  # RabbitMQ runs as the rabbitmq user
    handle = stack_mod.Stack(
        base,
        stack_ports=stack_mod.StackPorts.free(),
        node_name=f"chatstack-partition-{os.getpid()}",
        partitionable=True,
        extra={
            "gateway": {"broker": BROKER, "gateway": {"failover_after_s": 2.0}},
            "history": {"broker": BROKER},
        },
    )
    try:
        handle.start()
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(base, ignore_errors=True)


async def cut(stack: Stack, service: Service, seconds: float) -> tuple[float, float]:
    """Blackhole ``service``'s broker traffic for ``seconds``; (cut, healed) times."""
    namespace = stack.namespace(service)
    await asyncio.to_thread(namespace.blackhole, stack.rabbitmq.amqps_port)
    cut_at = time.time()
    try:
        await asyncio.sleep(seconds)
    finally:
        await asyncio.to_thread(namespace.heal)
    return cut_at, time.time()


async def pair_on_two_gateways(url: str, room: str) -> tuple[Chatter, Chatter]:
    ada = Chatter(url, "ada", room)
    await ada.connect()
    for _ in range(6):
        bob = Chatter(url, "bob", room)
        await bob.connect()
        if bob.instances[0] != ada.instances[0]:
            return ada, bob
        await bob.close()
    raise AssertionError("nginx never put two clients on different gateways")


def test_a_gateway_cut_off_from_the_broker(partition_stack: Stack) -> None:
    stack = partition_stack

    async def scenario() -> None:
        room = unique_room("partition-gw")
        ada, bob = await pair_on_two_gateways(stack.url, room)
        victim = next(g for g in stack.gateways if g.instance == ada.instances[0])
        stop = asyncio.Event()
        streams = [asyncio.create_task(talk(c, stop, c.name)) for c in (ada, bob)]
        await asyncio.sleep(2.0)
        with ReadinessLog([victim], every_s=0.2) as readiness:
            cut_at, healed_at = await cut(stack, victim, CUT_S)
            await asyncio.to_thread(victim.wait_status, "/readyz", 200, 60)
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*streams)
        acked = {**{ada.texts[c]: i for c, i in ada.acked.items()},
                 **{bob.texts[c]: i for c, i in bob.acked.items()}}  # fmt: skip
        stored = await wait_history_has(stack.url, room, set(acked))
        for chatter in (ada, bob):
            await chatter.close()

        noticed = readiness.first(victim.instance, 503, cut_at)
        assert noticed is not None and noticed < healed_at, (
            "not-ready never seen during the cut"
        )
        # ada was moved to the other gateway through nginx while the cut lasted.
        other = next(g.instance for g in stack.gateways if g is not victim)
        assert other in ada.instances[1:], ada.instances
        # Says ada sent into the cut gateway were refused or cut short, never acked by it.
        during = [a for a in ada.attempts if cut_at + 1 < a.sent_at < healed_at]
        answers = {a.answer for a in during}
        assert answers <= {"ack", "unavailable", "closed"}, answers
        assert {"unavailable", "closed"} & answers, "no say ever met the cut gateway"
        acks_during = [a for a in during if a.answer == "ack"]
        assert len(acks_during) >= 3, (
            "ada did not keep talking through the other gateway"
        )
        # Nothing acked lost or doubled: a false ack would be an acked text missing here.
        assert_acked_stored_once(acked, stored)
        print(
            f"gateway cut {CUT_S:.0f} s: not-ready after {noticed - cut_at:.1f} s,"
            f" ada reconnected {ada.reconnects}x, acked {len(acked)},"
            f" says during the cut {dict(Counter(a.answer for a in during))}"
        )

    asyncio.run(scenario())


def test_history_cut_off_from_the_broker(partition_stack: Stack) -> None:
    stack = partition_stack

    async def scenario() -> None:
        room = unique_room("partition-history")
        ada, bob = await pair_on_two_gateways(stack.url, room)
        stop = asyncio.Event()
        streams = [asyncio.create_task(talk(c, stop, c.name)) for c in (ada, bob)]
        await asyncio.sleep(2.0)
        with ReadinessLog([stack.history], every_s=0.2) as readiness:
            cut_at, healed_at = await cut(stack, stack.history, CUT_S)
            await asyncio.to_thread(stack.history.wait_status, "/readyz", 200, 60)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*streams)
        acked = {**{ada.texts[c]: i for c, i in ada.acked.items()},
                 **{bob.texts[c]: i for c, i in bob.acked.items()}}  # fmt: skip
        stored = await wait_history_has(stack.url, room, set(acked))
        for chatter in (ada, bob):
            await chatter.close()

        noticed = readiness.first(stack.history.instance, 503, cut_at)
        assert noticed is not None and noticed < healed_at, (
            "not-ready never seen during the cut"
        )
        during = [
            a for a in ada.attempts + bob.attempts if cut_at < a.sent_at < healed_at
        ]
        assert sum(a.answer == "ack" for a in during) >= 10, (
            "chat stopped while history was cut"
        )
        assert_acked_stored_once(acked, stored)
        print(
            f"history cut {CUT_S:.0f} s: not-ready after {noticed - cut_at:.1f} s,"
            f" acked {len(acked)} ({sum(a.answer == 'ack' for a in during)} during the cut),"
            " all stored once after healing"
        )

    asyncio.run(scenario())
