"""The garbage collection policy (gcpolicy): long-lived objects are frozen, frozen cycles are
freed by the release, and a closed websocket does not need a collection at all."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from support import Client, embedded, run

from chatstack.gcpolicy import LongLivedCollector

CLIENTS = 60


class Node:
    pass


def test_frozen_cycles_wait_for_the_release() -> None:
    run(frozen_cycles_wait_for_the_release())


async def frozen_cycles_wait_for_the_release() -> None:
    closed = [0]
    collector = LongLivedCollector(
        lambda: 100, lambda: closed[0], tick_s=3600, release_min_closed=10
    )
    cycle = Node()
    cycle.me = cycle  # type: ignore[attr-defined]
    alive = weakref.ref(cycle)
    try:
        collector.start()  # freezes it, as it would a connection's objects
        del cycle
        gc.collect()
        assert alive() is not None  # frozen: the collector does not walk it
        closed[0] = 99
        collector.tick()
        assert collector.releases == 0 and alive() is not None
        closed[0] = 100  # as many as are open
        collector.tick()
        assert collector.releases == 1 and alive() is None
        assert collector.last_release["collected"] >= 1
        assert not collector.release_due()
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0


def test_closed_websockets_are_freed_without_a_collection(tmp_path: Path) -> None:
    """Frozen handlers (they lived through a full collection) of closed websockets are freed
    by reference counting: the handler breaks its cycle with the session on close."""

    async def scenario() -> None:
        async with embedded(tmp_path, gateway__max_connections_per_address="1000") as emb:
            server, gateway = emb.served.server, emb.gateway
            url = emb.served.ws
            collector = LongLivedCollector(
                server.open_connections, lambda: server.closed, tick_s=3600
            )
            try:
                collector.start()
                clients = [await Client.connect(url) for _ in range(CLIENTS)]
                for n, client in enumerate(clients):
                    await client.join(f"room-{n % 10}", f"nick-{n}")
                gc.collect()  # a full collection the connections live through ...
                frozen = gc.get_freeze_count()
                collector.tick()  # ... so they are frozen now
                assert gc.get_freeze_count() > frozen
                handlers = [weakref.ref(h) for h in gateway.sockets]
                assert len(handlers) == CLIENTS

                gc.disable()
                try:
                    for client in clients:
                        client.close()
                    for _ in range(100):
                        if server.open_connections() == 0:
                            break
                        await asyncio.sleep(0.05)
                    assert server.open_connections() == 0 and server.closed == CLIENTS
                    await asyncio.sleep(0.1)  # tornado's last callbacks let go of them
                    assert [r for r in handlers if r() is not None] == []
                finally:
                    gc.enable()
            finally:
                collector.stop()

    run(scenario())
