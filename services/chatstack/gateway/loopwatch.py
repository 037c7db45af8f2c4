"""Measures how long the event loop was stalled (not running callbacks when it should).

A timer due every ``interval_s`` notes how late it ran; lateness beyond ``threshold_s`` is
stall time. The rate limiter credits stall time to every client (ratelimit.TokenBucket):
frames a client sent while the server was not reading are its own on-time frames.
"""

from __future__ import annotations

import asyncio

from ..metrics import Metrics


class LoopWatch:
    def __init__(
        self, metrics: Metrics, interval_s: float = 0.1, threshold_s: float = 0.05
    ) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self.threshold_s = threshold_s
        self.stalled_s = 0.0  # cumulative
        self.longest_s = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def stalled(self) -> float:
        return self.stalled_s

    def start(self) -> None:
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._schedule(loop, loop.time())

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        due = now + self.interval_s
        self._handle = loop.call_at(due, self._tick, loop, due)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        late = now - due
        if late > self.threshold_s:
            self.stalled_s += late
            self.longest_s = max(self.longest_s, late)
            self.metrics.timing("gateway.loop.stall_ms", late * 1000)
        self._schedule(loop, now)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
