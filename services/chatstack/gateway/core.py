"""The gateway of one process: sessions, rooms, publishing and fan-out.

Owned by the tornado application (no module or class-level state), so several gateways can
run in one process — the tests run two of them against one broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from .. import contract, protocol
from ..broker.base import BrokerUnavailable, GatewayBroker
from ..config import Config
from ..ids import IdGenerator
from ..metrics import Metrics
from .idempotency import IdempotencyCache
from .keepalive import Keepalive
from .loopwatch import LoopWatch
from .members import Members
from .presence import PresenceThrottle
from .rooms import Rooms

log = logging.getLogger(__name__)

# Closing many sockets at once (drain, broker resync): this many per event-loop iteration,
# so thousands of closes never hold the loop for long.
CLOSE_BATCH = 100
# A member closed for not reading gets this long to read its close frame; then, if it still
# has not read everything, its socket is torn down, REAP_BATCH per loop iteration: dropping
# a socket fails every write still queued on it (hundreds of futures), and hundreds of
# those at once would stall the loop.
REAP_AFTER_S = 1.0
REAP_BATCH = 10
# Time kept back from the drain budget for closing the broker connection.
_BROKER_CLOSE_S = 0.5


class Gateway:
    def __init__(
        self,
        config: Config,
        broker: GatewayBroker,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.instance = config.instance
        self.limits = config.limits
        self.broker = broker
        self.metrics = metrics or Metrics()
        self.rules = protocol.Rules.from_contract(config.limits.max_text_bytes)
        self.rooms = Rooms(broker)
        self.idempotency = IdempotencyCache(config.gateway.idempotency_ttl_s)
        self.ids = IdGenerator(clock)
        self.sessions: set[Any] = set()
        # Websocket handlers whose TCP connection is still open, and how many per address.
        self.sockets: set[Any] = set()
        self.per_address: dict[str, int] = {}
        self.loopwatch = LoopWatch(self.metrics)
        self.keepalive = Keepalive(config.gateway.ping_interval_s, config.gateway.ping_timeout_s)
        self.presence = PresenceThrottle(
            config.gateway.presence_coalesce_ms / 1000, self.rooms.fan_out, self.metrics
        )
        # Unique per process start: a restarted gateway of the same instance name is another
        # member-list announcer, and its predecessor's lease must not be taken for its own.
        self.gateway_id = f"{self.instance or 'gateway'}.{secrets.token_hex(4)}"
        limits = contract.section("limits")
        self.members = Members(
            self.gateway_id,
            self.rooms,
            self.publish_transient,
            config.gateway.presence_coalesce_ms / 1000,
            config.gateway.members_lease_s,
            limits["members_sweep_ms"] / 1000,
        )
        self.draining = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._to_reap: deque[Any] = deque()
        self._reaping = False
        self._failover: asyncio.TimerHandle | None = None
        self._to_flush: list[Any] = []
        broker.on_delivery = self.deliver
        broker.add_ready_listener(self._ready_changed)
        broker.on_reconnect = self._reconnected

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.metrics.gauge("gateway.ready.{instance}", 0, instance=self.instance)
        self.loopwatch.start()
        self.keepalive.start()
        self.members.start()
        await self.broker.start()

    async def drain(self, timeout: float) -> None:
        """Stop taking frames, tell every client to reconnect elsewhere, finish publishes,
        and wait (bounded) for the clients' close replies: a socket torn down before the
        close handshake completes is reported to the page as 1006, not 1012."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout - _BROKER_CLOSE_S)
        self.draining = True
        await self.close_all(protocol_close_code("close_service_restart"), "server restarting")
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        while self.sockets and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.sockets:
            log.warning(
                "%d client(s) did not complete the close handshake in time",
                len(self.sockets),
                extra={"event": "shutdown.unclosed"},
            )
        self.presence.close()
        # Gone members are withdrawn at once rather than left to expire with the lease.
        self.members.withdraw()
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=_BROKER_CLOSE_S)
        self.loopwatch.stop()
        self.keepalive.stop()
        await self.broker.close()

    async def close_all(self, code: int, reason: str) -> None:
        """Close every session, a batch per loop iteration."""
        sessions = list(self.sessions)
        for start in range(0, len(sessions), CLOSE_BATCH):
            for session in sessions[start : start + CLOSE_BATCH]:
                session.close(code, reason)
            await asyncio.sleep(0)

    def reap(self, handler: Any) -> None:
        """Tear down ``handler``'s socket soon (it was closed for not reading)."""
        self._to_reap.append(handler)
        if not self._reaping:
            self._reaping = True
            asyncio.get_running_loop().call_later(REAP_AFTER_S, self._reap_some)

    def write_soon(self, handler: Any) -> None:
        """Flush ``handler``'s queued frames at the next loop turn, with every other socket
        written to in this one (see ChatSocketHandler.send_frame)."""
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush)
        self._to_flush.append(handler)

    def _flush(self) -> None:
        handlers, self._to_flush = self._to_flush, []
        for handler in handlers:
            handler.flush_frames()

    def _reap_some(self) -> None:
        for _ in range(min(REAP_BATCH, len(self._to_reap))):
            self._to_reap.popleft().abort_if_behind()
        if self._to_reap:
            asyncio.get_running_loop().call_soon(self._reap_some)
        else:
            self._reaping = False

    # --- sockets and addresses -----------------------------------------------------------------

    def admits(self, address: str) -> bool:
        """Whether ``address`` may open one more websocket (gateway.max_connections_per_address)."""
        return self.per_address.get(address, 0) < self.config.gateway.max_connections_per_address

    def socket_opened(self, handler: Any, address: str) -> None:
        self.sockets.add(handler)
        self.per_address[address] = self.per_address.get(address, 0) + 1

    def socket_closed(self, handler: Any, address: str) -> None:
        if handler not in self.sockets:
            return
        self.sockets.discard(handler)
        left = self.per_address.get(address, 1) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)

    def _ready_changed(self, ready: bool) -> None:
        self.metrics.gauge("gateway.ready.{instance}", 1 if ready else 0, instance=self.instance)
        if self._failover is not None:
            self._failover.cancel()
            self._failover = None
        if ready:
            log.info("broker ready", extra={"event": "broker.ready"})
        else:
            log.warning("broker not ready", extra={"event": "broker.not_ready"})
            self._failover = asyncio.get_running_loop().call_later(
                self.config.gateway.failover_after_s, self._fail_over
            )

    def _fail_over(self) -> None:
        """Cut off from the broker for gateway.failover_after_s: send every client away.

        Each says `unavailable` here meanwhile; closed with 1012 it reconnects, and nginx
        passes the handshake (refused with 503 while not ready, see ChatSocketHandler) on to
        a gateway that can reach the broker. A short blip does not reach this point.
        """
        self._failover = None
        sessions = list(self.sessions)
        if self.broker.ready or not sessions:
            return
        log.warning(
            "broker unreachable for %.0f s: asking %d client(s) to reconnect elsewhere",
            self.config.gateway.failover_after_s,
            len(sessions),
            extra={"event": "broker.failover"},
        )
        code = protocol_close_code("close_service_restart")
        self.spawn(self.close_all(code, "broker unreachable, reconnect"))

    def _reconnected(self) -> None:
        """The broker is back after an outage: make every client resynchronise.

        While this gateway was cut off, messages said through other gateways reached history
        but not this gateway's (new) queue, and the sockets that stayed open here cannot know
        what they missed. Closing them with 1012 sends every client through its reconnect
        and recovery path (docs/protocol.md, "Recovery"), which fetches exactly that gap.
        """
        self.metrics.incr("gateway.broker.reconnects")
        sessions = list(self.sessions)
        if sessions:
            log.warning(
                "broker reconnected: asking %d client(s) to reconnect and recover",
                len(sessions),
                extra={"event": "broker.resync"},
            )
        code = protocol_close_code("close_service_restart")
        self.spawn(self.close_all(code, "broker reconnected, reconnect to catch up"))

    def publish_transient(self, kind: str, room: str, body: bytes) -> None:
        """Publish a presence event, member announcement or "who" request without waiting:
        one lost to an outage is repaired by the next heartbeat (or the clients' re-join)."""

        async def publish() -> None:
            try:
                await self.broker.publish(kind, room, body)
            except BrokerUnavailable:
                log.debug("%s lost", kind, extra={"event": f"{kind}.lost", "room": room})

        self.spawn(publish())

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a per-frame coroutine, tracked so SIGTERM can wait for it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- origin check --------------------------------------------------------------------------

    def origin_allowed(self, origin: str) -> bool:
        """Whether a cross-origin handshake from ``origin`` may proceed.

        tornado (>= 6.6) admits same-origin handshakes itself (Origin matching Host, or
        Sec-Fetch-Site: same-origin) and asks only about the others: those are allowed
        exactly when listed in gateway.allowed_origins.
        """
        return origin.strip().lower().rstrip("/") in self.config.gateway.allowed_origins

    # --- from the broker -----------------------------------------------------------------------

    def deliver(self, kind: str, room: str, body: bytes) -> None:
        try:
            payload = json.loads(body)
            if kind == "message":
                frame = self._message_frame(room, payload)
            elif kind == "presence":
                nick, event = payload["nick"], payload["event"]
                if not isinstance(nick, str) or event not in ("join", "leave"):
                    raise ValueError(f"bad presence {nick!r} {event!r}")
                self.members.presence(room, payload)
                self.presence.publish(room, nick, event)
                return
            elif kind in ("members", "who"):
                self.members.received(kind, room, body)
                return
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "dropping malformed broker message: %s", exc, extra={"event": "broker.malformed"}
            )
            return
        if frame is None:
            return
        delivered = self.rooms.fan_out(room, frame)
        if kind == "message" and delivered:
            self.metrics.incr("gateway.messages.delivered", delivered)

    def _message_frame(self, room: str, payload: dict[str, Any]) -> str | None:
        # "sender" is missing only from a gateway older than the client token.
        key = (room, payload["nick"], payload.get("sender", ""), payload["client_msg_id"])
        entry = self.idempotency.get(key)
        if entry is None:
            self.idempotency.remember(key, payload["id"], payload["ts"])
        elif entry.delivered:
            # Shown here already: a say published again after a lost confirm, or retried
            # through another gateway.
            return None
        else:
            entry.delivered = True
        return protocol.message(
            room, payload["id"], payload["nick"], payload["text"], payload["ts"]
        )


def protocol_close_code(name: str) -> int:
    return int(contract.section("protocol")[name])
