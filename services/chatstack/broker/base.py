"""What the gateway and the history service need from a message broker.

Both implementations — the in-process ``memory`` broker of the embedded default and
``rabbitmq`` — provide these, so the services and most tests do not care which one runs.

Messages travel as JSON bodies (serialized once by the publisher). ``kind`` is "message"
(durable: stored by history) or "presence" (transient).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable

DeliveryHandler = Callable[[str, str, bytes], None]  # (kind, room, body)
ReadyListener = Callable[[bool], None]
# Stores a batch; returns the indexes of poison messages (to dead-letter, never redeliver).
StoreHandler = Callable[[list[bytes]], Awaitable[list[int]]]

log = logging.getLogger(__name__)

# While the store fails, how often the held batch is tried again.
STORE_RETRY_S = 5.0


class BrokerUnavailable(Exception):
    """The broker could not take the message; it was NOT accepted."""


class StoreFault(Exception):
    """The store cannot commit anything right now: stop consuming and hold the batch; do
    not requeue it (every requeue counts toward the queue's delivery limit)."""


class _ReadyState:
    def __init__(self) -> None:
        self._ready = False
        self._listeners: list[ReadyListener] = []
        # Called after a lost connection was re-established (for metrics).
        self.on_reconnect: Callable[[], None] = lambda: None

    @property
    def ready(self) -> bool:
        return self._ready

    def add_ready_listener(self, listener: ReadyListener) -> None:
        self._listeners.append(listener)

    def _set_ready(self, ready: bool) -> None:
        if ready != self._ready:
            self._ready = ready
            for listener in list(self._listeners):
                listener(ready)


class GatewayBroker(_ReadyState, abc.ABC):
    """Publishes with confirms; receives the rooms it is bound to."""

    def __init__(self) -> None:
        super().__init__()
        self.on_delivery: DeliveryHandler = lambda kind, room, body: None

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin connecting; returns at once (readiness is reported via listeners)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, kind: str, room: str, body: bytes) -> None:
        """Resolve once the broker has confirmed; raise BrokerUnavailable otherwise."""

    @abc.abstractmethod
    def bind(self, room: str) -> None:
        """Start receiving ``room`` (kept across reconnects until ``unbind``)."""

    @abc.abstractmethod
    def unbind(self, room: str) -> None: ...


class HistoryBroker(_ReadyState, abc.ABC):
    """Delivers every chat message from a durable queue, in batches.

    ``on_store`` must have committed the batch when it returns; only then are the messages
    acknowledged to the broker, except the poison ones it names, which are dead-lettered.
    If it raises ``StoreFault``, consuming pauses and the batch is held and retried every
    ``STORE_RETRY_S`` until it is stored; nothing is requeued meanwhile.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_store: StoreHandler | None = None
        self._backlog = 0  # messages already queued when consuming (re)started
        self._stored_since_start = 0

    def _consuming(self, backlog: int) -> None:
        """Consuming (re)starts; ``backlog`` messages were queued for us meanwhile."""
        self._backlog = backlog
        self._stored_since_start = 0

    def _stored(self, count: int) -> None:
        """A batch of ``count`` deliveries of the current consumer is committed."""
        behind = self._stored_since_start < self._backlog
        self._stored_since_start += count
        if behind and self._stored_since_start >= self._backlog:
            # Operators see how long history lagged after an outage (the API's live flips).
            log.info(
                "caught up: stored the %d message(s) queued while history was away",
                self._backlog,
                extra={"event": "history.caught_up", "backlog": self._backlog},
            )

    @property
    def caught_up(self) -> bool:
        """Consuming, and what was queued when consuming started is stored: everything
        acked more than a moment ago is in the store. The history API's ``live``."""
        return self.ready and self._stored_since_start >= self._backlog

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
