"""The garbage collection policy (gcpolicy) with real websockets on the embedded app:
connections that lived through a full collection are frozen (not walked again), and their
cycles are freed once enough of them closed."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from pathlib import Path

import tornado.netutil
from support import Client, make_config, run

from chatstack.broker.memory import MemoryHub
from chatstack.gateway.core import Gateway
from chatstack.gcpolicy import LongLivedCollector
from chatstack.history.service import HistoryService
from chatstack.history.store import HistoryStore
from chatstack.httpserver import GuardedHTTPServer
from chatstack.metrics import Metrics
from chatstack.web.app import make_embedded_app

CLIENTS = 60


def test_frozen_connections_are_freed_after_they_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = make_config("serve", tmp_path, gateway__max_connections_per_address="1000")
        metrics = Metrics()
        hub = MemoryHub()
        gateway = Gateway(config, hub.gateway(), metrics, time.time)
        history = HistoryService(HistoryStore(config.history_database), hub.history(), metrics)
        await history.start()
        await gateway.start()
        server = GuardedHTTPServer(
            make_embedded_app(config, gateway, history, metrics),
            xheaders=False,
            max_connections=1000,
            header_timeout_s=10.0,
        )
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        server.add_sockets(sockets)
        url = f"ws://127.0.0.1:{sockets[0].getsockname()[1]}/ws"
        collector = LongLivedCollector(
            server.open_connections,
            lambda: server.closed,
            tick_s=3600,  # ticked by hand below
            release_min_closed=CLIENTS // 2,
        )
        try:
            collector.start()
            assert gc.get_freeze_count() > 0  # startup's objects

            clients = [await Client.connect(url) for _ in range(CLIENTS)]
            for n, client in enumerate(clients):
                await client.join(f"room-{n % 10}", f"nick-{n}")
            gc.collect()  # a full collection the sessions live through ...
            frozen = gc.get_freeze_count()
            collector.tick()  # ... so they are frozen now
            assert gc.get_freeze_count() > frozen
            assert collector.releases == 0

            for client in clients:
                client.close()
            for _ in range(100):
                if server.open_connections() == 0:
                    break
                await asyncio.sleep(0.05)
            assert server.open_connections() == 0 and server.closed == CLIENTS
            # A collection does not reach their cycles while they are frozen ...
            assert gc.collect() < CLIENTS
            assert collector.release_due()
            collector.tick()
            # ... the release does (tornado's handler, stream and request are a cycle).
            assert collector.releases == 1
            assert collector.last_release["collected"] >= 10 * CLIENTS
            assert not collector.release_due()
        finally:
            collector.stop()
            server.stop()
            await server.close_all_connections()
            await gateway.drain(1.0)
            await history.close()
        assert gc.get_freeze_count() == 0

    run(scenario())
