"""axe-core, as installed by `make axe` (pinned in tests/browser/package-lock.json), run
inside the page under test: it is injected with CDP Runtime.evaluate, which the page's
CSP does not govern, so the page itself stays exactly as served."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from chromium_cdp import Page

REPO = Path(__file__).resolve().parents[2]
AXE_JS = REPO / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

RUN = """axe.run(document, {resultTypes: ['violations']}).then((result) =>
  result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ' ' + n.failureSummary),
  })))"""


def axe_source() -> str:
    if not AXE_JS.exists():
        reason = f"{AXE_JS} missing; install it with: make axe (needs npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return AXE_JS.read_text()


async def blocking_violations(page: Page, source: str) -> list[dict[str, Any]]:
    """Serious and critical axe violations of the page as it is now."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(source + "\n;true")
    violations: list[dict[str, Any]] = await page.evaluate(RUN)
    return [v for v in violations if v["impact"] in BLOCKING]


async def check_axe(page: Page, source: str, where: str) -> None:
    found = await blocking_violations(page, source)
    report = "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"])
        for v in found
    )
    assert not found, f"axe-core, {where}: serious/critical violations:\n{report}"
