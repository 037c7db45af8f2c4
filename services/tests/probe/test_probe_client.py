"""Pieces of the probe's websocket client that need no server: welcome checks, pacing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chatstack.probe.client import Pacer, check_welcome, presence_of
from chatstack.probe.report import FlowFailed

WELCOME: dict[str, Any] = {
    "type": "welcome",
    "conn": "c1",
    "instance": "gw-1",
    "limits": {"max_text_bytes": 2000, "max_rooms": 8, "rate_per_s": 5.0, "burst": 10},
}


def test_a_valid_welcome_passes() -> None:
    assert check_welcome(WELCOME) is WELCOME


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"type": "message"}, "not a welcome"),
        ({"instance": ""}, "welcome.instance"),
        ({"conn": 7}, "welcome.conn"),
        ({"limits": None}, "welcome.limits is not"),
        ({"limits": {**WELCOME["limits"], "max_rooms": 0}}, "max_rooms"),
        ({"limits": {**WELCOME["limits"], "rate_per_s": True}}, "rate_per_s"),
        ({"limits": {**WELCOME["limits"], "burst": 2.5}}, "burst"),
        (
            {"limits": {k: v for k, v in WELCOME["limits"].items() if k != "max_text_bytes"}},
            "max_text",
        ),
    ],
)
def test_a_broken_welcome_fails_with_the_field(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(FlowFailed, match=complaint):
        check_welcome({**WELCOME, **change})


def test_presence_matcher() -> None:
    matches = presence_of("lobby", "ada", "join")
    assert matches({"type": "presence", "room": "lobby", "nick": "ada", "event": "join"})
    assert not matches({"type": "presence", "room": "lobby", "nick": "ada", "event": "leave"})
    assert not matches({"type": "presence", "room": "other", "nick": "ada", "event": "join"})
    assert not matches({"type": "message", "room": "lobby", "nick": "ada", "event": "join"})


def test_pacer_stays_under_the_announced_rate() -> None:
    """Paced frames never outrun a server bucket of the same rate and burst.

    The server's bucket (rate r, burst b, full at connect) allows b + r*t frames by time t.
    """
    rate, burst, frames = 50.0, 4, 14

    async def pace() -> list[float]:
        pacer = Pacer(rate, burst)
        start = time.monotonic()
        stamps = []
        for _ in range(frames):
            await pacer.take()
            stamps.append(time.monotonic() - start)
        return stamps

    stamps = asyncio.run(pace())
    for n, at in enumerate(stamps, start=1):
        assert n <= burst + rate * at, f"frame {n} at {at:.3f}s outruns the bucket"
    # ... and it does not crawl either: at most the cautious 80 % rate plus scheduling slack.
    assert stamps[-1] < (frames - (burst - 1)) / (rate * 0.8) + 0.2
