"""The client's recovery.js computes what chat-probe's recovery.py computes.

Both implement docs/protocol.md's recovery; the Python one has property tests
(services/tests/probe/test_probe_recovery.py). This differential test runs the JS module
in Chromium, as the page loads it, on the same inputs and compares every answer: ids,
floors, and whole recoveries against a history that lags (answers live only from some
read on, and stores some missed messages late), including the pauses between reads.
"""

from __future__ import annotations

import asyncio
import json
import random
import tomllib
from pathlib import Path
from typing import Any

from chatstack import ids
from chatstack.probe import recovery
from chromium_cdp import Browser

REPO = Path(__file__).resolve().parents[2]
CONTRACT = tomllib.loads((REPO / "services/chatstack/contract.toml").read_text())
OVERLAP_MS = int(CONTRACT["protocol"]["recovery_overlap_ms"])
MAX_MS = (1 << 48) - 1

# Runs in the page: the module exactly as chat.js imports it.
JS_IDS = """(async () => {
  const r = await import('./recovery.js');
  const input = %s;
  return {
    times: input.ids.map((id) => r.idTimeMs(id)),
    floors: input.times.map((t) => r.floorId(t)),
    recoveryFloors: input.ids.map((id) => r.recoveryFloor(id, input.overlap)),
  };
})()"""

JS_RECOVER = """(async () => {
  const r = await import('./recovery.js');
  const results = [];
  for (const c of %s) {
    // History as LaggingHistory below models it: reads counted where paging starts.
    const floor = c.resume ? r.recoveryFloor(c.resume, c.overlap) : null;
    let reads = 0;
    const fetchPage = async (after, limit) => {
      if (after === floor) reads += 1;
      const stored = c.messages
        .filter((m, i) => c.visibleAt[i] <= reads)
        .sort((a, b) => (a.id < b.id ? -1 : 1));
      const messages =
        after === null ? stored.slice(-limit) : stored.filter((m) => m.id > after).slice(0, limit);
      return { messages, live: reads >= c.liveFrom };
    };
    const log = new r.RoomLog();
    log.addNew(c.seen);
    const live = log.addNew(c.live);
    const found = [];
    const pauses = [];
    await r.recover(fetchPage, log, c.resume, c.overlap, c.limit, c.limit, {
      recheckMs: c.recheck,
      onFound: (messages) => found.push(...messages),
      sleep: async (ms) => { pauses.push(ms); },
    });
    results.push({ shown: [...live, ...found].map((m) => m.id), pauses, reads });
  }
  return results;
})()"""


def conversations(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Messages said on gateways with skewed clocks; seen / missed / live after reconnect;
    history live from read ``liveFrom`` on, each missed message stored by read
    ``liveFrom + 1`` at the latest (history drains within one recheck interval)."""
    cases = []
    for _ in range(count):
        now = 1_764_470_400_000
        skews = [rng.randint(0, 2000) for _ in range(rng.randint(1, 3))]
        messages = []
        for n in range(rng.randint(1, 40)):
            now += rng.randint(1, 4000)
            messages.append(
                {"id": ids.encode(now + rng.choice(skews), rng.getrandbits(79))}
            )
        seen = rng.randint(0, len(messages))
        live = rng.randint(0, len(messages) - seen)
        live_from = rng.randint(0, 5)
        shown_before = {m["id"] for m in messages[:seen]}
        seen_log = sorted(shown_before)
        cases.append(
            {
                "messages": messages,
                "seen": messages[:seen],
                "resume": seen_log[-1] if seen_log else None,
                "live": messages[len(messages) - live :] if live else [],
                "overlap": rng.choice([OVERLAP_MS, 0, 1500]),
                "limit": rng.randint(1, 6),
                "recheck": rng.choice([1, 100, 1000]),
                "liveFrom": live_from,
                "visibleAt": [
                    0 if m["id"] in shown_before else rng.randint(0, live_from + 1)
                    for m in messages
                ],
            }
        )
    return cases


async def python_recover(case: dict[str, Any]) -> dict[str, Any]:
    resume = case["resume"]
    floor = recovery.recovery_floor(resume, case["overlap"]) if resume else None
    reads = 0

    async def fetch_page(after: str | None, limit: int) -> recovery.Page:
        nonlocal reads
        if after == floor:
            reads += 1
        stored = sorted(
            (
                m
                for m, v in zip(case["messages"], case["visibleAt"], strict=True)
                if v <= reads
            ),
            key=lambda m: m["id"],
        )
        page = (
            stored[-limit:]
            if after is None
            else [m for m in stored if m["id"] > after][:limit]
        )
        return recovery.Page(page, reads >= case["liveFrom"])

    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds * 1000)

    log = recovery.RoomLog()
    log.add_new(case["seen"])
    assert log.newest == resume
    live = log.add_new(case["live"])
    found = await recovery.recover(
        fetch_page,
        log,
        resume,
        case["overlap"],
        case["limit"],
        recheck_ms=case["recheck"],
        sleep=sleep,
    )
    return {"shown": [m["id"] for m in live + found], "pauses": pauses, "reads": reads}


def test_recovery_js_agrees_with_the_probe(run_in_browser: Any, site: Any) -> None:
    rng = random.Random(20261130)
    sample_ids = [
        ids.encode(rng.randint(0, MAX_MS), rng.getrandbits(80)) for _ in range(300)
    ]
    sample_ids += [ids.encode(0, 0), ids.encode(MAX_MS, (1 << 80) - 1)]
    times = [rng.randint(-5000, MAX_MS + 5000) for _ in range(300)] + [0, -1, MAX_MS]
    cases = conversations(rng, 200)

    async def scenario(browser: Browser) -> None:
        page = await browser.new_page()
        await page.navigate(site.url + "/")
        got = await page.evaluate(
            JS_IDS
            % json.dumps({"ids": sample_ids, "times": times, "overlap": OVERLAP_MS})
        )
        assert got["times"] == [recovery.id_time_ms(i) for i in sample_ids]
        assert got["floors"] == [recovery.floor_id(t) for t in times]
        assert got["recoveryFloors"] == [
            recovery.recovery_floor(i, OVERLAP_MS) for i in sample_ids
        ]
        shown = await page.evaluate(JS_RECOVER % json.dumps(cases))
        expected = await asyncio.gather(*(python_recover(c) for c in cases))
        for case, js, py in zip(cases, shown, expected, strict=True):
            assert js == py, f"JS {js} != Python {py} for {case}"
        # The guarantee, where it holds (full overlap, something seen before): every
        # message not seen before is shown once, however late history stored it.
        for case, py in zip(cases, expected, strict=True):
            if case["resume"] is not None and case["overlap"] == OVERLAP_MS:
                seen = {m["id"] for m in case["seen"]}
                missed = sorted(
                    m["id"] for m in case["messages"] if m["id"] not in seen
                )
                assert sorted(py["shown"]) == missed, case
        # Not vacuous: rereads happened, with backoff, and found late-stored messages.
        assert any(len(py["pauses"]) > 2 for py in expected)
        assert any(
            p > c["recheck"] for c, py in zip(cases, expected) for p in py["pauses"]
        )

    run_in_browser(scenario)
