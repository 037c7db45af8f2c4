"""``make bench-soak``: a steady 5k deliveries/s (50 members, 100 messages/s) through the
stack for a long time; RSS of every service sampled, errors counted, and at the end every
acked message looked up in history (each acked id must be stored exactly once).

Memory growth is measured after a warm-up as long as the gateways' idempotency TTL: the
cache holds every say of that long by design, so until then it fills (at this rate ~18 MB per
gateway); growth during the warm-up is reported apart."""

from __future__ import annotations

import asyncio
import json
import os
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


def default_warmup_s() -> float:
    """The gateways' idempotency TTL (their longest-held per-message state), with the
    ``CHATSTACK_*`` overrides the stack passes on to them."""
    from chatstack.config import load_config

    return load_config("serve", None, dict(os.environ)).gateway.idempotency_ttl_s


async def soak(
    target: Target,
    seconds: float,
    warmup_s: float,
    rate: float = 5000,
    members: int = 50,
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
        result = await load.run(warmup_s, seconds)
    finally:
        sampler.cancel()
        await load.close()
    await asyncio.sleep(3)  # history commits what is still in flight
    stored = await asyncio.to_thread(stored_ids, target.history_url, room)
    acked = load.tally.acked_ids
    missing = sorted(set(acked) - set(stored))
    # Growth over the measured part: from the first sample after the warm-up to the last.
    settled = samples[min(len(samples) - 1, int(warmup_s / SAMPLE_S) + 1)]
    return result | {
        "case": "soak",
        "warmup_s": warmup_s,
        "rss_samples": samples,
        "rss_growth_percent": growth(settled, samples[-1]),
        "rss_growth_during_warmup_percent": growth(samples[0], settled),
        "rss_peak_growth_percent": peak_growth(samples[samples.index(settled) :]),
        "acked": len(acked),
        "stored": len(stored),
        "acked_not_stored": len(missing),
        "stored_twice": len(stored) - len(set(stored)),
    }


def growth(first: dict[str, int], last: dict[str, int]) -> dict[str, float | None]:
    return {
        g: round(100 * (last[g] - first[g]) / first[g], 1) if first[g] else None
        for g in last
    }


def peak_growth(measured: list[dict[str, int]]) -> dict[str, float | None]:
    """The highest RSS of the last third against the highest of the first third. RabbitMQ's
    memory is a saw-tooth (its quorum-queue WAL is held in memory until it rolls over), so
    two single samples can land anywhere on a tooth; the peaks only grow if memory does."""
    third = max(1, len(measured) // 3)
    first = {g: max(s[g] for s in measured[:third]) for g in measured[0]}
    last = {g: max(s[g] for s in measured[-third:]) for g in measured[0]}
    return growth(first, last)
