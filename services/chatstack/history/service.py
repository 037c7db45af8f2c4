"""Consumes the history queue into the store: a batch is acked only after its commit.

Validation, storing and telling poison messages from store faults: ``writer.Writer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..broker.base import HistoryBroker
from ..metrics import Metrics
from .store import HistoryStore
from .writer import Writer

log = logging.getLogger(__name__)


class HistoryService:
    def __init__(
        self,
        store: HistoryStore,
        broker: HistoryBroker,
        metrics: Metrics | None = None,
        instance: str = "history",
    ):
        self.instance = instance
        self.store = store
        self.broker = broker
        self.metrics = metrics or Metrics()
        self.writer = Writer(store, self.metrics, self._notify)
        self._listeners: list[Callable[[bool], None]] = []
        broker.on_store = self.store_batch
        broker.add_ready_listener(self._ready_changed)
        broker.on_reconnect = lambda: self.metrics.incr("history.broker.reconnects")

    @property
    def fault(self) -> str | None:
        """Why the store fails right now (None while it works): /readyz reports it."""
        return self.writer.fault

    @property
    def ready(self) -> bool:
        return self.broker.ready and self.store.is_open and self.fault is None

    def add_ready_listener(self, listener: Callable[[bool], None]) -> None:
        """Called with ``ready`` whenever the broker connection or the store changes."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        self.metrics.gauge(
            "history.ready.{instance}", 1 if self.ready else 0, instance=self.instance
        )
        for listener in list(self._listeners):
            listener(self.ready)

    @property
    def caught_up(self) -> bool:
        """Ready and holding everything that was queued for it (docs/protocol.md, ``live``)."""
        return self.broker.caught_up and self.store.is_open and self.fault is None

    async def start(self) -> None:
        self.store.open()
        self.metrics.gauge("history.ready.{instance}", 0, instance=self.instance)
        await self.broker.start()

    async def close(self) -> None:
        await self.broker.close()
        self.store.close()

    def _ready_changed(self, ready: bool) -> None:
        self._notify()
        log.log(
            logging.INFO if ready else logging.WARNING,
            "broker %s",
            "ready" if ready else "not ready",
            extra={"event": "broker.ready" if ready else "broker.not_ready"},
        )

    async def store_batch(self, bodies: list[bytes]) -> list[int]:
        """The broker's ``on_store``: poison indexes back, StoreFault when the store fails."""
        return self.writer.write(bodies)
