"""SIGTERM of the server a page is on, seen by a real Chromium: the page gets close code
1012, never 1006 (the gateway waits, bounded, for the close handshake: a socket torn down
before the browser's close reply arrives is reported as 1006), and comes back. Behind the
stack's nginx its first reconnect attempt lands on the other gateway.

Chromium on loopback answers the close frame within a millisecond, so this test passes
even without the wait; services/tests/handler/test_connections.py
(test_sigterm_waits_for_the_close_handshake) reproduces a slow close reply."""

from __future__ import annotations

import asyncio
from typing import Any

from chat_page import ChatPage
from chromium_cdp import Browser

# Every close code the page reports (#close-code: "the server is restarting (code 1012)"),
# and how many websockets the page opens from now on (its reconnect attempts).
RECORDER = """(() => {
  const closeCode = document.querySelector('#close-code');
  window.closeCodes = [];
  new MutationObserver(() => {
    const found = closeCode.textContent.match(/\\(code (\\d+)\\)/);
    if (found) window.closeCodes.push(found[1]);
  }).observe(closeCode, {childList: true, characterData: true, subtree: true});
  window.socketsOpened = 0;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.socketsOpened += 1; }
  };
  return true;
})()"""


def test_sigterm_page_sees_1012_and_reconnects(run_in_browser: Any, site: Any) -> None:
    async def scenario(browser: Browser) -> None:
        page = await ChatPage.open(browser, site.url, "drained")
        instance = await page.text_of("#instance")
        await page.page.evaluate(RECORDER)
        if site.kind == "stack":
            names = [g.instance for g in site.stack.gateways]
            assert instance in names, (instance, names)
            await asyncio.to_thread(site.stack.gateway(names.index(instance) + 1).stop)
        else:
            await asyncio.to_thread(site.stop)  # SIGTERM, waits for the exit
        await page.page.wait_for(
            "window.closeCodes.length > 0", "the page saw the close"
        )
        if site.kind == "embedded":
            await asyncio.to_thread(site.restore)
        await page.wait_online(timeout=30)
        codes: list[str] = await page.page.evaluate("window.closeCodes")
        assert codes[:1] == ["1012"], codes
        if site.kind == "stack":
            # One reconnect attempt, and it landed on the other gateway.
            assert codes == ["1012"], codes
            assert await page.page.evaluate("window.socketsOpened") == 1
            assert await page.text_of("#instance") not in ("", instance)

    run_in_browser(scenario)
