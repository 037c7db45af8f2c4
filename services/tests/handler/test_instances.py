"""Several gateways on one broker: cross-instance delivery, exact recovery with skewed
clocks, retries across instances, drain."""

import time
from pathlib import Path

from support import Client, cluster, eventually, get_json, history_pages, run

from chatstack import contract
from chatstack.broker.memory import MemoryHub
from chatstack.probe import recovery

SKEW_S = 2.0


def test_cross_instance_delivery(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        async with cluster(tmp_path, [hub.gateway(), hub.gateway()], hub.history()) as c:
            one = await Client.connect(c.gateway_served[0].ws)
            two = await Client.connect(c.gateway_served[1].ws)
            assert one.welcome["instance"] != two.welcome["instance"]
            await one.join("lobby", "one")
            await two.join("lobby", "two")
            await one.expect("presence", nick="two", event="join")  # presence crosses too
            a = await one.say("lobby", "from one", "1")
            b = await two.say("lobby", "from two", "2")
            for client in (one, two):
                await client.expect("message", id=a["id"])
                await client.expect("message", id=b["id"])
                assert len(client.messages()) == 2

    run(scenario())


def test_recovery_is_exact_with_a_gateway_two_seconds_behind(tmp_path: Path) -> None:
    """A reconnecting client gets every message it missed and none twice, although the
    second gateway's ids are two seconds older than the first's."""

    async def scenario() -> None:
        hub = MemoryHub()
        clocks = [time.time, lambda: time.time() - SKEW_S]
        async with cluster(
            tmp_path,
            [hub.gateway(), hub.gateway()],
            hub.history(),
            clocks,
            limits__burst="100",
        ) as c:
            fast, slow = c.gateway_served
            talker_fast = await Client.connect(fast.ws)
            talker_slow = await Client.connect(slow.ws)
            reader = await Client.connect(fast.ws)
            for client, nick in ((talker_fast, "f"), (talker_slow, "s"), (reader, "r")):
                await client.join("lobby", nick)

            log = recovery.RoomLog()
            for i in range(5):
                for talker, name in ((talker_fast, "f"), (talker_slow, "s")):
                    ack = await talker.say("lobby", f"{name}-before-{i}", f"{name}b{i}")
                    await reader.expect("message", id=ack["id"])
                    log.add(ack["id"])
            resume_from = log.newest
            reader.close()

            missed = set()
            for i in range(5):
                for talker, name in ((talker_fast, "f"), (talker_slow, "s")):
                    missed.add((await talker.say("lobby", f"{name}-away-{i}", f"{name}a{i}"))["id"])
            await eventually(lambda: c.history.store.count("lobby") == 20)

            # The skew is real: reading after the newest id alone would lose messages.
            naive = await get_json(
                f"{c.history_served.http}/api/rooms/lobby/messages?after={resume_from}"
            )
            assert {m["id"] for m in naive["messages"]} < missed

            back = await Client.connect(fast.ws)
            await back.join("lobby", "r")
            recovered = await recovery.recover(
                history_pages(c.history_served.http, "lobby"),
                log,
                resume_from,
                contract.section("protocol")["recovery_overlap_ms"],
                limit=3,
            )
            ids = [m["id"] for m in recovered]
            assert len(ids) == len(set(ids))
            assert set(ids) == missed

    run(scenario())


def test_retry_through_another_gateway_is_stored_and_delivered_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        brokers = [hub.gateway(), hub.gateway(), hub.gateway()]
        async with cluster(tmp_path, brokers, hub.history()) as c:
            first, second, third = c.gateway_served
            watcher = await Client.connect(second.ws)
            await watcher.join("lobby", "w")
            sender = await Client.connect(first.ws)
            await sender.join("lobby", "ada")
            original = await sender.say("lobby", "hello", "k1")
            sender.close()
            # The sender lost its socket before the ack reached it; it retries elsewhere.
            again = await Client.connect(second.ws)
            await again.join("lobby", "ada")
            retry = await again.say("lobby", "hello", "k1")
            assert retry["id"] == original["id"]  # gateway two saw the original
            await watcher.say("lobby", "marker", "m")
            await watcher.expect("message", text="marker")
            assert [m["text"] for m in watcher.messages()] == ["hello", "marker"]
            await eventually(lambda: c.history.store.count("lobby") == 2)

            # Gateway three never saw the original (no member there at the time): it acks a
            # new id, but history keeps the first one only (docs/protocol.md, "Retries").
            late_client = await Client.connect(third.ws)
            await late_client.join("lobby", "ada")
            late = await late_client.say("lobby", "hello", "k1")
            assert late["id"] != original["id"]
            await watcher.say("lobby", "marker2", "m2")
            await eventually(lambda: c.history.store.count("lobby") == 3)  # marker2 stored
            stored = [m.id for m in c.history.store.latest("lobby", 10)]
            assert original["id"] in stored
            assert late["id"] not in stored
            # Gateway two knew k1 already: its members were not shown the copy.
            await watcher.expect("message", text="marker2")
            assert [m["text"] for m in watcher.messages()] == ["hello", "marker", "marker2"]

    run(scenario())
