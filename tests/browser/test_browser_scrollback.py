"""Older history (issue 11, item 3) in real Chromium at desktop size and on a 390 px phone,
against `chatstack serve`: a room with more than one page shows the newest page; scrolling
to the top puts the older messages above, in order, each once, and the reader stays where
they were (no jump to the bottom, no "new messages" marker, nothing counted unread).
Screenshots and console logs are kept on failure (conftest.py run_in_browser).
"""

from __future__ import annotations

import asyncio
import secrets
import tomllib
from pathlib import Path
from typing import Any

import pytest
from chat_page import ChatPage
from chatstack.probe.client import ChatClient
from chatstack.probe.target import Target
from chromium_cdp import Browser

REPO = Path(__file__).resolve().parents[2]
CONTRACT = tomllib.loads((REPO / "services/chatstack/contract.toml").read_text())
PAGE = int(CONTRACT["protocol"]["page_limit_default"])
BURST = int(CONTRACT["limits"]["burst"])

pytestmark = [
    pytest.mark.parametrize("site", ["embedded"], indirect=True),
    pytest.mark.parametrize("viewport", ["desktop", "phone"]),
]

# Where the message that was first on screen sits in the box (px from the box's top).
TOP_OF = """((id) => {
  const box = document.querySelector('#messages');
  const item = document.querySelector(`#messages ol:not([hidden]) li[data-id="${id}"]`);
  return item.getBoundingClientRect().top - box.getBoundingClientRect().top;
})"""


async def fill_room(site: Any, room: str, count: int) -> list[str]:
    """``count`` messages in ``room``, from as many talkers as the rate limit needs (each
    within its burst): seconds, not count / rate_per_s."""
    target = Target(site.url, site.url, 10.0)

    async def talker(n: int, texts: list[str]) -> list[str]:
        client = await ChatClient.connect(target, f"t{n}")
        try:
            await client.join(room, f"t{n}")
            return [await client.say(room, text) for text in texts]
        finally:
            await client.close()

    texts = [f"old {i:03d}" for i in range(count)]
    chunks = [texts[i : i + BURST - 1] for i in range(0, count, BURST - 1)]
    said = await asyncio.gather(*(talker(n, chunk) for n, chunk in enumerate(chunks)))
    return [message_id for ids in said for message_id in ids]


def test_scrolling_to_the_top_loads_older_pages_in_place(
    run_in_browser: Any, site: Any, viewport: str
) -> None:
    room = f"older-{secrets.token_hex(3)}"
    total = PAGE + PAGE // 2

    async def scenario(browser: Browser) -> None:
        ids = sorted(await fill_room(site, room, total))
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        await ada.join(room, "ada")
        await ada.page.wait_for(
            f"document.querySelectorAll('#messages ol:not([hidden]) li.message').length === {PAGE}",
            "the newest page shown",
        )
        assert [m["id"] for m in await ada.shown()] == ids[-PAGE:]
        first = ids[-PAGE]
        await ada.page.evaluate("document.querySelector('#messages').scrollTop = 0")
        await ada.page.wait_for(
            f"document.querySelectorAll('#messages ol:not([hidden]) li.message').length === {total}",
            "older messages shown",
        )
        shown = [m["id"] for m in await ada.shown()]
        assert shown == ids, "older pages out of order, doubled or missing"
        # The reader's place: the message that was at the top is still where it was
        # (in view, near the top), not pushed off by what was put above it.
        place = await ada.page.evaluate(f"{TOP_OF}({first!r})")
        box_height = await ada.page.evaluate(
            "document.querySelector('#messages').clientHeight"
        )
        assert 0 <= place < box_height / 2, f"the reader lost their place: {place} px"
        assert await ada.page.evaluate("document.querySelector('#new-below').hidden")
        assert await ada.count("#rooms .badge:not([hidden])") == 0
        # At the start of the room nothing more is asked for.
        await ada.page.evaluate("document.querySelector('#messages').scrollTop = 0")
        await asyncio.sleep(0.5)
        assert [m["id"] for m in await ada.shown()] == ids
        assert ada.console_errors() == [], ada.console_errors()

    run_in_browser(scenario)
