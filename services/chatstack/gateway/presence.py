"""Presence fan-out that a re-join flood cannot multiply.

Every join or leave is one frame to every member of the room, so 20 connections re-joining
with alternating nicks would make thousands of frames a second. The first event of a quiet
room goes out at once; events arriving within ``window_s`` after it are gathered and sent
together when the window ends, one frame per nick carrying that nick's last event. A steady
flood therefore costs each member at most one frame per nick per window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import protocol
from ..metrics import Metrics

FanOut = Callable[[str, str], int]

NICKS_PER_ITERATION = 4


class PresenceThrottle:
    def __init__(self, window_s: float, fan_out: FanOut, metrics: Metrics) -> None:
        self.window_s = window_s
        self._fan_out = fan_out
        self._metrics = metrics
        self._pending: dict[str, dict[str, str]] = {}  # room -> nick -> last event
        # Rooms in their window (a timer) or sending what gathered (a callback per batch).
        self._cooling: dict[str, asyncio.Handle] = {}

    def publish(self, room: str, nick: str, event: str) -> None:
        if self.window_s <= 0:
            self._fan_out(room, protocol.presence(room, nick, event))
            return
        if room not in self._cooling:
            self._fan_out(room, protocol.presence(room, nick, event))
            self._cool(room)
            return
        pending = self._pending.setdefault(room, {})
        if pending.pop(nick, None) is not None:
            self._metrics.incr("gateway.presence.coalesced")
        pending[nick] = event

    def _cool(self, room: str) -> None:
        loop = asyncio.get_running_loop()
        self._cooling[room] = loop.call_later(self.window_s, self._flush, room)

    def _flush(self, room: str) -> None:
        pending = self._pending.pop(room, None)
        if not pending:
            del self._cooling[room]
            return
        self._send(room, list(pending.items()), 0)

    def _send(self, room: str, events: list[tuple[str, str]], start: int) -> None:
        # 200 joins to a 200-member room are 40,000 frames: a few nicks per loop iteration.
        end = start + NICKS_PER_ITERATION
        for nick, event in events[start:end]:
            self._fan_out(room, protocol.presence(room, nick, event))
        if end < len(events):
            self._cooling[room] = asyncio.get_running_loop().call_soon(
                self._send, room, events, end
            )
        else:
            self._cool(room)

    def close(self) -> None:
        for handle in self._cooling.values():
            handle.cancel()
        self._cooling.clear()
        self._pending.clear()
