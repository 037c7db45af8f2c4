"""HistoryBroker.caught_up (the history API's ``live``) on the in-memory broker: ready is
not enough, the backlog queued while history was away must be stored first."""

import asyncio
import logging

import pytest

from chatstack.broker.memory import MemoryHub


def test_caught_up_only_after_the_backlog_is_stored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chatstack.broker")

    async def scenario() -> None:
        hub = MemoryHub()
        history = hub.history()
        release = asyncio.Event()
        stored: list[bytes] = []

        async def slow_store(batch: list[bytes]) -> list[int]:
            await release.wait()
            stored.extend(batch)
            return []

        history.on_store = slow_store
        for n in range(3):
            hub.route("message", "lobby", b"m%d" % n)
        await history.start()
        await asyncio.sleep(0.01)
        assert history.ready
        assert not history.caught_up, "caught up before the backlog was stored"
        release.set()
        for _ in range(100):
            if history.caught_up:
                break
            await asyncio.sleep(0.01)
        assert history.caught_up
        assert stored == [b"m0", b"m1", b"m2"]
        [said] = [r for r in caplog.records if getattr(r, "event", "") == "history.caught_up"]
        assert said.levelno == logging.INFO and getattr(said, "backlog", None) == 3
        await history.close()
        assert not history.caught_up

    asyncio.run(scenario())
