"""Message ids: ULIDs (https://github.com/ulid/spec), monotonic within a process.

26 Crockford base32 characters: 48 bits of milliseconds, then 80 random bits. Ids from
different gateways are unique (80 random bits) and sort as strings in time order. Within
one generator they strictly increase, even if the clock stands still or steps back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
ID_LENGTH = 26
TIME_LENGTH = 10
_TIME_MAX = (1 << 48) - 1
_RANDOM_MAX = (1 << 80) - 1


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def encode(ms: int, randomness: int) -> str:
    if not 0 <= ms <= _TIME_MAX:
        raise ValueError(f"timestamp {ms} ms is outside the 48-bit range of a ULID")
    return _encode(ms, TIME_LENGTH) + _encode(randomness, ID_LENGTH - TIME_LENGTH)


def id_time_ms(message_id: str) -> int:
    """Milliseconds encoded in an id (or in any prefix of at least 10 characters)."""
    value = 0
    for char in message_id[:TIME_LENGTH]:
        value = value * 32 + _DECODE[char]
    return value


def floor_id(ms: int) -> str:
    """The smallest id of millisecond ``ms``: every id of that millisecond or later is greater."""
    return encode(max(0, ms), 0)


def is_id_prefix(text: str) -> bool:
    """True for a string usable as ``after=``: up to 26 characters of the id alphabet."""
    return len(text) <= ID_LENGTH and all(c in _DECODE for c in text)


class IdGenerator:
    """Monotonic ULIDs from an injectable clock (seconds, like time.time)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last_ms = -1
        self._last_random = 0

    def new(self) -> tuple[str, int]:
        """A fresh id and the millisecond timestamp it encodes."""
        ms = int(self._clock() * 1000)
        if ms <= self._last_ms:
            # Same millisecond (or the clock stepped back): stay on the last time and
            # count up, which keeps ids strictly increasing.
            ms = self._last_ms
            randomness = self._last_random + 1
            if randomness > _RANDOM_MAX:
                ms, randomness = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # Top bit clear leaves room to count up within one millisecond.
            randomness = int.from_bytes(os.urandom(10), "big") >> 1
        self._last_ms, self._last_random = ms, randomness
        return encode(ms, randomness), ms
