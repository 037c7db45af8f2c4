"""Per-connection flood control: a token bucket and a sliding window of errors."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# How long credit for a server stall lasts: the frames sent during the stall are read
# within moments after it.
STALL_CREDIT_S = 2.0


def _never_stalled() -> float:
    return 0.0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; each frame costs one.

    ``stalled`` returns the seconds the server's event loop has spent stalled so far
    (cumulative). Frames a client sent while the server was not reading arrive all at once
    afterwards; time spent stalled refills the bucket beyond ``burst``, so a client that
    kept to the rate is not refused for the server's own delay: the limit measures what the
    client sent, not when the server got round to reading it.
    """

    # Two per connection: slots keep them small.
    __slots__ = (
        "_clock",
        "_credit_until",
        "_stalled",
        "_stalled_at_update",
        "_tokens",
        "_updated",
        "burst",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        stalled: Callable[[], float] = _never_stalled,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._stalled = stalled
        self._tokens = float(burst)
        self._updated = clock()
        self._stalled_at_update = stalled()
        self._credit_until = 0.0

    def take(self) -> bool:
        now = self._clock()
        stalled_total = self._stalled()
        elapsed = max(0.0, now - self._updated)
        stalled = min(elapsed, max(0.0, stalled_total - self._stalled_at_update))
        self._updated = now
        self._stalled_at_update = stalled_total
        # Normal time refills up to burst; stalled time refills without that cap, for the
        # backlog that arrives right after the stall. Credit left over after
        # STALL_CREDIT_S is dropped: it is not a budget to save up.
        if stalled > 0:
            self._credit_until = now + STALL_CREDIT_S
        elif now > self._credit_until:
            self._tokens = min(self._tokens, float(self.burst))
        refilled = min(
            self._tokens + (elapsed - stalled) * self.rate, max(self._tokens, self.burst)
        )
        self._tokens = refilled + stalled * self.rate
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class AbuseMeter:
    """Counts errors in the last ``window`` seconds; ``record`` says when the limit is hit."""

    __slots__ = ("_clock", "_times", "max_errors", "window")

    def __init__(self, max_errors: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.max_errors = max_errors
        self.window = window
        self._clock = clock
        # Made on the first error: an empty deque is ~760 bytes, and most connections
        # never make a mistake (idle connections are counted by the ten thousand).
        self._times: deque[float] | None = None

    def record(self) -> bool:
        """Record one error; True when ``max_errors`` errors fell within the window."""
        now = self._clock()
        if self._times is None:
            self._times = deque()
        times = self._times
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        return len(times) >= self.max_errors
