"""Consumes the history queue into the store: a batch is acked only after its commit."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from .. import contract
from ..broker.base import HistoryBroker
from ..metrics import Metrics
from .store import HistoryStore

log = logging.getLogger(__name__)


def _valid(message: Any, patterns: dict[str, re.Pattern[str]]) -> bool:
    return (
        isinstance(message, dict)
        and all(isinstance(message.get(k), str) for k in ("id", "text"))
        and isinstance(message.get("ts"), int)
        and all(
            isinstance(message.get(k), str) and pattern.fullmatch(message[k]) is not None
            for k, pattern in patterns.items()
        )
    )


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
        protocol = contract.section("protocol")
        self._patterns = {
            "room": re.compile(protocol["room_pattern"]),
            "nick": re.compile(protocol["nick_pattern"]),
            "client_msg_id": re.compile(protocol["client_msg_id_pattern"]),
        }
        broker.on_store = self.store_batch
        broker.add_ready_listener(self._ready_changed)
        broker.on_reconnect = lambda: self.metrics.incr("history.broker.reconnects")

    @property
    def ready(self) -> bool:
        return self.broker.ready and self.store.is_open

    @property
    def caught_up(self) -> bool:
        """Ready and holding everything that was queued for it (docs/protocol.md, ``live``)."""
        return self.broker.caught_up and self.store.is_open

    async def start(self) -> None:
        self.store.open()
        self.metrics.gauge("history.ready.{instance}", 0, instance=self.instance)
        await self.broker.start()

    async def close(self) -> None:
        await self.broker.close()
        self.store.close()

    def _ready_changed(self, ready: bool) -> None:
        self.metrics.gauge(
            "history.ready.{instance}",
            1 if ready and self.store.is_open else 0,
            instance=self.instance,
        )
        log.log(
            logging.INFO if ready else logging.WARNING,
            "broker %s",
            "ready" if ready else "not ready",
            extra={"event": "broker.ready" if ready else "broker.not_ready"},
        )

    async def store_batch(self, bodies: list[bytes]) -> None:
        messages = []
        for body in bodies:
            try:
                message = json.loads(body)
            except ValueError:
                message = None
            if not _valid(message, self._patterns):
                # Acked without storing: a poison message must not block the queue forever.
                log.error(
                    "dropping malformed message (%d bytes)",
                    len(body),
                    extra={"event": "history.malformed"},
                )
                continue
            messages.append(message)
        if not messages:
            return
        started = time.monotonic()
        stored, duplicates = self.store.store(messages)
        self.metrics.timing("history.store.commit_ms", (time.monotonic() - started) * 1000)
        if stored:
            self.metrics.incr("history.messages.stored", stored)
        if duplicates:
            self.metrics.incr("history.messages.duplicates", duplicates)
            log.info("skipped %d duplicate(s)", duplicates, extra={"event": "history.duplicates"})
