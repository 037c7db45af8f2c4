"""The embedded default (in-memory broker) keeps poison messages aside as RabbitMQ's
dead-letter queue would, and stores the rest of the batch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from support import eventually, run

from chatstack.broker.memory import MemoryHub
from chatstack.history.service import HistoryService
from chatstack.history.store import HistoryStore


def test_poison_is_set_aside_and_the_rest_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        history = HistoryService(HistoryStore(tmp_path / "h.sqlite3"), hub.history())
        await history.start()
        good = {"id": "01JGOOD0000000000000000000", "room": "r", "nick": "ada", "text": "ok",
                "ts": 1, "client_msg_id": "k1"}  # fmt: skip
        too_big = dict(good, id="01JBIG00000000000000000000", client_msg_id="k2", ts=2**70)
        hub.route("message", "r", b"{not json")
        hub.route("message", "r", json.dumps(too_big).encode())
        hub.route("message", "r", json.dumps(good).encode())
        await eventually(lambda: len(hub.dead_letters) == 2 and history.store.count() == 1)
        await asyncio.sleep(0.1)
        assert history.ready and history.fault is None
        await history.close()

    run(scenario())
