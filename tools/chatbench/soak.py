"""``make bench-soak``: a steady 5k deliveries/s (50 members, 100 messages/s) through the
stack for a long time; RSS of every service sampled, errors counted, and at the end every
acked message looked up in history (each acked id must be stored exactly once)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from .cases import Case, RoomLoad
from .procstat import process_tree, rss_bytes
from .targets import Target

SAMPLE_S = 10.0


def stored_ids(base_url: str, room: str) -> list[str]:
    """Every message id history holds for ``room``, oldest first (paged by ``after``)."""
    found: list[str] = []
    after = "0"
    while True:
        url = f"{base_url}/api/rooms/{room}/messages?after={after}&limit=500"
        with urllib.request.urlopen(url, timeout=30) as resp:
            page = json.loads(resp.read())["messages"]
        if not page:
            return found
        found += [m["id"] for m in page]
        after = page[-1]["id"]


async def soak(
    target: Target, seconds: float, rate: float = 5000, members: int = 50
) -> dict[str, Any]:
    room = f"soak-{int(time.time())}"
    load = RoomLoad(
        target, Case("soak", members, senders=2, rate=rate), room, keep_ids=True
    )
    await load.connect()
    samples: list[dict[str, int]] = []

    async def sample() -> None:
        while True:
            samples.append(
                {g: rss_bytes(process_tree(p[0])) for g, p in target.groups.items()}
            )
            await asyncio.sleep(SAMPLE_S)

    sampler = asyncio.create_task(sample())
    try:
        result = await load.run(0.0, seconds)
    finally:
        sampler.cancel()
        await load.close()
    await asyncio.sleep(3)  # history commits what is still in flight
    stored = await asyncio.to_thread(stored_ids, target.history_url, room)
    acked = load.tally.acked_ids
    missing = sorted(set(acked) - set(stored))
    # Growth from the first sample after warm-up (a quarter in) to the last.
    settled = samples[max(1, len(samples) // 4)] if len(samples) > 1 else samples[0]
    growth = {
        g: round(100 * (samples[-1][g] - settled[g]) / settled[g], 1)
        if settled[g]
        else None
        for g in samples[-1]
    }
    return result | {
        "case": "soak",
        "rss_samples": samples,
        "rss_growth_percent": growth,
        "acked": len(acked),
        "stored": len(stored),
        "acked_not_stored": len(missing),
        "stored_twice": len(stored) - len(set(stored)),
    }
