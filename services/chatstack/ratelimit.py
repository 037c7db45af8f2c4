"""Per-connection flood control: a token bucket and a sliding window of errors."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; each frame costs one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> bool:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class AbuseMeter:
    """Counts errors in the last ``window`` seconds; ``record`` says when the limit is hit."""

    def __init__(self, max_errors: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.max_errors = max_errors
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()

    def record(self) -> bool:
        """Record one error; True when ``max_errors`` errors fell within the window."""
        now = self._clock()
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times) >= self.max_errors
