"""The in-process broker of the embedded default (``chatstack serve``) and of most tests.

It keeps RabbitMQ's semantics where the services depend on them: delivery only to bound
rooms, a durable-until-acked history queue that redelivers what the store failed to commit,
and publish confirms that resolve only after routing. Nothing survives the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque

from .base import STORE_RETRY_S, BrokerUnavailable, GatewayBroker, HistoryBroker, StoreFault

log = logging.getLogger(__name__)
_BATCH = 100
_RETRY_S = 0.5


class MemoryHub:
    """The exchange and the history queue shared by the endpoints of one process."""

    def __init__(self) -> None:
        self._bound: dict[str, set[MemoryGatewayBroker]] = defaultdict(set)
        self._history_queue: deque[bytes] = deque()
        # What history refused for good; kept (in memory only, like everything here).
        self.dead_letters: list[bytes] = []
        self._history: MemoryHistoryBroker | None = None
        self.available = True  # tests switch this off to simulate an outage

    def gateway(self) -> MemoryGatewayBroker:
        return MemoryGatewayBroker(self)

    def history(self) -> MemoryHistoryBroker:
        return MemoryHistoryBroker(self)

    def route(self, kind: str, room: str, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        for endpoint in list(self._bound[room]):
            # Delivered on a later loop turn, as a network broker would.
            loop.call_soon(endpoint.on_delivery, kind, room, body)
        if kind == "message":
            self._history_queue.append(body)
            if self._history is not None:
                self._history.wake()


class MemoryGatewayBroker(GatewayBroker):
    def __init__(self, hub: MemoryHub) -> None:
        super().__init__()
        self._hub = hub
        self._rooms: set[str] = set()

    async def start(self) -> None:
        self._set_ready(True)

    async def close(self) -> None:
        for room in list(self._rooms):
            self.unbind(room)
        self._set_ready(False)

    async def publish(self, kind: str, room: str, body: bytes) -> None:
        if not self.ready or not self._hub.available:
            raise BrokerUnavailable("the in-memory broker is closed")
        self._hub.route(kind, room, body)

    def bind(self, room: str) -> None:
        self._rooms.add(room)
        self._hub._bound[room].add(self)

    def unbind(self, room: str) -> None:
        self._rooms.discard(room)
        self._hub._bound[room].discard(self)


class MemoryHistoryBroker(HistoryBroker):
    def __init__(self, hub: MemoryHub) -> None:
        super().__init__()
        self._hub = hub
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.store_retry_s = STORE_RETRY_S

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._hub._history = self
        self._task = asyncio.create_task(self._consume())
        self._consuming(len(self._hub._history_queue))
        if self._hub._history_queue:  # what queued while no consumer was there, as RabbitMQ
            self.wake()
        self._set_ready(True)

    async def close(self) -> None:
        self._set_ready(False)
        self._hub._history = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _consume(self) -> None:
        queue = self._hub._history_queue
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while queue:
                batch = [queue[i] for i in range(min(_BATCH, len(queue)))]
                try:
                    assert self.on_store is not None
                    poison = set(await self.on_store(batch))
                except StoreFault:  # logged by the service, which reports not-ready
                    await asyncio.sleep(self.store_retry_s)
                    continue
                except Exception:
                    log.exception("store failed; redelivering", extra={"event": "history.retry"})
                    await asyncio.sleep(_RETRY_S)
                    continue
                for index in range(len(batch)):  # acknowledged: only now leave the queue
                    body = queue.popleft()
                    if index in poison:
                        self._hub.dead_letters.append(body)
                self._stored(len(batch))
