"""Garbage collection for a process that holds many long-lived connections.

CPython's full (generation 2) collection walks every object the collector tracks, with the
event loop stopped. A joined websocket is ~120 tracked objects (tornado's request, stream
and handler, our session, its buckets), so a gateway at its connection cap tracks millions
and each automatic full collection stalled it for about a second (measured in-process on the
2-core bench machine: 0.47 s at 2000 connections, 0.88 s at 8000; docs/performance.md).

The policy here: what survived a full collection is frozen (``gc.freeze``: moved to the
permanent generation, which collections skip), so the automatic full collections that follow
walk only what was promoted since, and their pause no longer grows with the connections held.

The cost is reclaiming late: frozen objects that later become cyclic garbage are only freed
when the frozen set is released again (one full collection over everything, timed and
logged). A closed connection is not such garbage - its handler breaks its one cycle, with
its session, on close (gateway/handler.py), so its objects go as soon as tornado lets go of
them (checked with real websockets in services/tests/handler/test_gcpolicy.py) - but other
code may leave cycles behind. The release bounds what those can hold: it runs once as many
connections have closed since the last one as are open now (at least
``RELEASE_MIN_CLOSED``), and at least every ``RELEASE_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from .metrics import Metrics

log = logging.getLogger(__name__)

TICK_S = 1.0
RELEASE_FRACTION = 1.0
RELEASE_MIN_CLOSED = 1000
RELEASE_EVERY_S = 3600.0


class LongLivedCollector:
    """Freezes survivors of full collections; releases them as connections close.

    ``open_connections`` and ``closed_connections`` (a running total) come from the server
    (httpserver.GuardedHTTPServer)."""

    def __init__(
        self,
        open_connections: Callable[[], int],
        closed_connections: Callable[[], int],
        metrics: Metrics | None = None,
        *,
        tick_s: float = TICK_S,
        release_fraction: float = RELEASE_FRACTION,
        release_min_closed: int = RELEASE_MIN_CLOSED,
        release_every_s: float = RELEASE_EVERY_S,
    ) -> None:
        self.open_connections = open_connections
        self.closed_connections = closed_connections
        self.metrics = metrics or Metrics()
        self.tick_s = tick_s
        self.release_fraction = release_fraction
        self.release_min_closed = release_min_closed
        self.release_every_s = release_every_s
        self.releases = 0
        self.last_release: dict[str, float] = {}
        self._full_collections = 0
        self._closed_at_release = 0
        self._released_at = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Freeze what startup made (modules, config, the app): it lives as long as the process."""
        if self._handle is not None:
            return
        gc.collect()
        gc.freeze()
        self._full_collections = _full_collections()
        self._closed_at_release = self.closed_connections()
        self._released_at = time.monotonic()
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        gc.unfreeze()

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.tick_s, self.tick)

    def tick(self) -> None:
        full = _full_collections()
        if full != self._full_collections:
            # An automatic full collection ran: what it left is long-lived.
            self._full_collections = full
            gc.freeze()
        if self.release_due():
            self.release()
        if self._handle is not None:
            self._schedule()

    def release_due(self) -> bool:
        closed = self.closed_connections() - self._closed_at_release
        if closed >= max(self.release_min_closed, self.release_fraction * self.open_connections()):
            return True
        return time.monotonic() - self._released_at >= self.release_every_s

    def release(self) -> None:
        """Walk everything once: free the cycles frozen meanwhile, then freeze the survivors."""
        frozen = gc.get_freeze_count()
        began = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        pause_ms = (time.perf_counter() - began) * 1000
        self._full_collections = _full_collections()
        self._closed_at_release = self.closed_connections()
        self._released_at = time.monotonic()
        self.releases += 1
        self.last_release = {"frozen_before": frozen, "collected": collected, "pause_ms": pause_ms}
        self.metrics.timing("gateway.gc.release_ms", pause_ms)
        log.info(
            "released frozen objects: %d collected of %d, %.0f ms",
            collected,
            frozen,
            pause_ms,
            extra={"event": "gc.release", "collected": collected, "pause_ms": round(pause_ms, 1)},
        )


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])
