"""Websocket pings for every socket of a gateway, from one timer.

tornado's own pings (``websocket_ping_interval``) run a task per connection, sleeping
between pings: with its coroutine, sleep future and timer that was ~1.8 KB of every idle
connection (tracemalloc, 2000 idle joined sockets). Here the sockets sit in a wheel of
``slots`` buckets visited one per tick, so every socket is pinged every ``interval_s``
(its first ping within ``interval_s`` of opening), and one that has not answered with a
pong ``timeout_s`` after a ping (rounded up to the next tick) is told so, as tornado did.
Sockets are dealt to the buckets in turn, so a reconnect storm does not ping in one burst.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from typing import Protocol

# Wheel resolution: a socket's pings go out in one of interval/tick batches. Small batches
# (20k sockets, 25 s: 80 per tick) keep each burst of writes short for the other rooms.
TICK_S = 0.1


class Pingable(Protocol):
    def keepalive_ping(self) -> None:
        """Send a ping frame."""

    def keepalive_timeout(self) -> None:
        """No pong came within the timeout of the last ping."""


class Keepalive:
    def __init__(self, interval_s: float, timeout_s: float, tick_s: float = TICK_S) -> None:
        if interval_s <= 0 or not 0 < timeout_s <= interval_s:
            raise ValueError("need interval_s > 0 and 0 < timeout_s <= interval_s")
        self.slots = max(1, round(interval_s / tick_s))
        self.tick_s = interval_s / self.slots  # so that `slots` ticks are exactly interval_s
        # Ticks between a ping and its deadline (at least one: a pong needs a round trip).
        self._timeout_ticks = max(1, math.ceil(timeout_s / self.tick_s - 1e-9))
        self._wheel: list[dict[Pingable, None]] = [{} for _ in range(self.slots)]
        self._slot_of: dict[Pingable, int] = {}
        self._dealt = 0
        # Pinged and not answered yet, in ping order (so in deadline order) -> deadline tick.
        self._unanswered: OrderedDict[Pingable, int] = OrderedDict()
        self._tick = 0
        self._started_at = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    # --- sockets -----------------------------------------------------------------------------

    def add(self, socket: Pingable) -> None:
        slot = self._dealt % self.slots
        self._dealt += 1
        self._slot_of[socket] = slot
        self._wheel[slot][socket] = None

    def discard(self, socket: Pingable) -> None:
        slot = self._slot_of.pop(socket, None)
        if slot is not None:
            del self._wheel[slot][socket]
        self._unanswered.pop(socket, None)

    def answered(self, socket: Pingable) -> None:
        """A pong came from ``socket``."""
        self._unanswered.pop(socket, None)

    # --- timer -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._started_at = loop.time()
            self._schedule(loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # On a fixed grid from the start: a late tick does not push the later ones back.
        due = self._started_at + (self._tick + 1) * self.tick_s
        self._handle = loop.call_at(due, self._run_tick, loop)

    def _run_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tick()
        self._schedule(loop)

    def tick(self) -> None:
        """One step of the wheel: time out what is overdue, ping the next bucket."""
        self._tick += 1
        tick = self._tick
        unanswered = self._unanswered
        while unanswered:
            socket, deadline = next(iter(unanswered.items()))
            if deadline > tick:
                break
            self.discard(socket)
            socket.keepalive_timeout()
        deadline = tick + self._timeout_ticks
        # A copy: a failed write may close its socket, which discards it from this slot.
        for socket in list(self._wheel[tick % self.slots]):
            unanswered[socket] = deadline
            unanswered.move_to_end(socket)
            socket.keepalive_ping()
