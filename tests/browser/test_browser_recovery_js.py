"""The client's recovery.js computes what chat-probe's recovery.py computes.

Both implement docs/protocol.md's recovery; the Python one has property tests
(services/tests/probe/test_probe_recovery.py). This differential test runs the JS module
in Chromium, as the page loads it, on the same inputs and compares every answer.
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
    const stored = [...c.messages].sort((a, b) => (a.id < b.id ? -1 : 1));
    const fetchPage = async (after, limit) =>
      after === null ? stored.slice(-limit) : stored.filter((m) => m.id > after).slice(0, limit);
    const log = new r.RoomLog();
    log.addNew(c.seen);
    const resumeFrom = log.newest;
    const live = log.addNew(c.live);
    const found = await r.recover(fetchPage, log, resumeFrom, c.overlap, c.limit, c.limit);
    results.push([...live, ...found].map((m) => m.id));
  }
  return results;
})()"""


def conversations(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Messages said on gateways with skewed clocks; seen / missed / live after reconnect."""
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
        cases.append(
            {
                "messages": messages,
                "seen": messages[:seen],
                "live": messages[len(messages) - live :] if live else [],
                "overlap": rng.choice([OVERLAP_MS, 0, 1500]),
                "limit": rng.randint(1, 6),
            }
        )
    return cases


async def python_recover(case: dict[str, Any]) -> list[str]:
    stored = sorted(case["messages"], key=lambda m: m["id"])

    async def fetch_page(after: str | None, limit: int) -> list[dict[str, Any]]:
        if after is None:
            return stored[-limit:]
        return [m for m in stored if m["id"] > after][:limit]

    log = recovery.RoomLog()
    log.add_new(case["seen"])
    resume_from = log.newest
    live = log.add_new(case["live"])
    found = await recovery.recover(
        fetch_page, log, resume_from, case["overlap"], case["limit"]
    )
    return [m["id"] for m in live + found]


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

    run_in_browser(scenario)
