"""SIGTERM of the server a page is on, seen by a real Chromium: the page gets close code
1012, never 1006 (the gateway waits, bounded, for the close handshake: a socket torn down
before the browser's close reply arrives is reported as 1006), and comes back. Behind the
stack's nginx its first reconnect attempt lands on the other gateway.

Chromium on loopback answers the close frame within a millisecond, so this test passes
even without the wait; services/tests/handler/test_connections.py
(test_sigterm_waits_for_the_close_handshake) reproduces a slow close reply."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from chat_page import ChatPage
from chromium_cdp import Browser

# Every #status text the page shows ("Connection lost.", "Reconnecting…", "Connected") and
# every close the page reports in #close-code (details: "the server is restarting (code
# 1012)"; the status itself is in words, without codes).
STATUS_RECORDER = """(() => {
  const status = document.querySelector('#status');
  const closeCode = document.querySelector('#close-code');
  window.statusTexts = [];
  window.closeTexts = [];
  new MutationObserver(() => window.statusTexts.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
  new MutationObserver(() => window.closeTexts.push(closeCode.textContent))
    .observe(closeCode, {childList: true, characterData: true, subtree: true});
  return true;
})()"""


def test_sigterm_page_sees_1012_and_reconnects(run_in_browser: Any, site: Any) -> None:
    async def scenario(browser: Browser) -> None:
        page = await ChatPage.open(browser, site.url, "drained")
        instance = await page.text_of("#instance")
        await page.page.evaluate(STATUS_RECORDER)
        if site.kind == "stack":
            names = [g.instance for g in site.stack.gateways]
            assert instance in names, (instance, names)
            await asyncio.to_thread(site.stack.gateway(names.index(instance) + 1).stop)
        else:
            await asyncio.to_thread(site.stop)  # SIGTERM, waits for the exit
        await page.page.wait_for(
            "window.closeTexts.some(t => t.includes('(code '))",
            "the page saw the close",
        )
        if site.kind == "embedded":
            await asyncio.to_thread(site.restore)
        await page.wait_online(timeout=30)
        texts: list[str] = await page.page.evaluate("window.statusTexts")
        closes: list[str] = await page.page.evaluate("window.closeTexts")
        codes = re.findall(r"\(code (\d+)\)", " ".join(closes))
        assert codes[:1] == ["1012"], closes
        if site.kind == "stack":
            # One reconnect attempt ("Reconnecting…" while it is under way), and it worked.
            assert codes == ["1012"], closes
            assert texts.count("Reconnecting…") == 1, texts
            assert await page.text_of("#instance") not in ("", instance)

    run_in_browser(scenario)
