"""Accessibility of the client (issue 11, item 10), at desktop size and on a 390 px phone:
the active room is aria-current, unread state is in the room's accessible name and
announced, the live region announces new messages and never the history a join loads,
everything works from the keyboard, and axe-core (pinned, `make axe`) finds no serious or
critical violation in the states a user sees.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from axe_check import check_axe
from chat_page import ChatPage
from chromium_cdp import Browser
from test_browser_ui import talk

pytestmark = [
    pytest.mark.parametrize("site", ["embedded"], indirect=True),
    pytest.mark.parametrize("viewport", ["desktop", "phone"]),
]

ANNOUNCED = "[...document.querySelectorAll('#announcer p')].map((p) => p.textContent)"
MAX_TABS = 30


def test_keyboard_live_region_unread_and_axe(
    run_in_browser: Any, site: Any, viewport: str, axe: str
) -> None:
    here = f"a11y-here-{secrets.token_hex(3)}"
    there = f"a11y-there-{secrets.token_hex(3)}"
    history = [f"old line {n}" for n in range(5)]

    async def scenario(browser: Browser) -> None:
        await talk(site, here, "bob", history)
        ada = await ChatPage.open(browser, site.url, "ada", viewport)

        # Keyboard only: the first visit opens the join dialog with the room field focused.
        assert await ada.focused() == "room"
        nick = await ada.page.evaluate("document.querySelector('#nick').value")
        await ada.page.call("Input.insertText", text=here)
        await ada.press("Enter")
        await ada.wait_joined(here, nick)
        await ada.wait_texts(history)
        assert await ada.focused() == "text"
        assert await ada.page.evaluate(ANNOUNCED) == [], "history was announced"

        await talk(site, here, "bob", ["live one"])
        await ada.wait_texts(["live one"])
        await ada.page.wait_for(
            f"{ANNOUNCED}.includes('bob: live one')", "the live message announced"
        )
        assert not any("old line" in a for a in await ada.page.evaluate(ANNOUNCED))

        # A second room through the "+ join room" control, from the keyboard.
        seen: list[str] = []
        for _ in range(MAX_TABS):
            await ada.press("Tab")
            seen.append(await ada.focused())
            if seen[-1] in ("add-room", "toggle-rooms"):
                break
        if seen[-1] == "toggle-rooms":  # phone: the control is in the rooms panel
            await ada.press("Enter")
            assert await ada.focused() == f"room:{here}", "focus moves into the panel"
            while await ada.focused() != "add-room" and len(seen) < MAX_TABS:
                await ada.press("Tab")
                seen.append(await ada.focused())
        assert seen[-1] == "add-room", f"+ join room not reached by Tab: {seen}"
        await ada.press("Enter")
        assert await ada.page.evaluate("document.querySelector('#join-dialog').open")
        await ada.press("Escape")
        assert not await ada.page.evaluate(
            "document.querySelector('#join-dialog').open"
        )
        await ada.page.evaluate("document.querySelector('#add-room').focus()")
        await ada.press("Enter")
        await ada.page.call("Input.insertText", text=there)
        await ada.press("Enter")
        await ada.wait_joined(there, nick)

        # Unread in the room not on screen: named, announced, and the active one current.
        await ada.show_room(here)
        current = await ada.page.evaluate(
            "[...document.querySelectorAll('#rooms [aria-current]')].map((b) => b.dataset.room)"
        )
        assert current == [here], current
        await talk(site, there, "bob", ["for later"])
        tab = f"#rooms button[data-room={json.dumps(there)}]"
        await ada.page.wait_for(
            f"document.querySelector({json.dumps(tab)}).classList.contains('unread')",
            "unread mark",
        )
        if viewport == "phone":  # the panel is closed: its button tells
            assert await ada.accessible_name("#toggle-rooms") == "Rooms 1 unread"
            await ada.page.click("#toggle-rooms")
        assert await ada.accessible_name(tab) == f"{there} 1 unread"
        await ada.page.wait_for(
            f"{ANNOUNCED}.includes('1 unread in {there}')", "unread announced"
        )
        await check_axe(ada.page, axe, f"{viewport}, two rooms, one unread")
        if viewport == "phone":
            await ada.press("Escape")
            assert not await ada.visible("#rooms-panel")

        # Everything on screen is reachable with Tab (the panels through their buttons).
        reached: set[str] = set()
        for _ in range(MAX_TABS):
            await ada.press("Tab")
            reached.add(await ada.focused())
        wanted = {"leave", "messages", "text", "SUMMARY"}
        wanted |= (
            {"toggle-rooms", "toggle-people"}
            if viewport == "phone"
            else {f"room:{here}", f"room:{there}", "add-room"}
        )
        assert wanted <= reached, f"not reached by Tab: {wanted - reached}"
        if viewport == "phone":
            await ada.page.evaluate("document.querySelector('#toggle-people').focus()")
            await ada.press("Enter")
            assert await ada.visible(f"#presence li[data-nick={json.dumps(nick)}]")
            await ada.press("Escape")
            assert await ada.focused() == "toggle-people"
            assert not await ada.visible("#people-panel")

        # The dialog with a refused nick, as axe sees it.
        await ada.open_join_dialog()
        await ada.page.fill("#nick", "no spaces please")
        await ada.page.click("#join")
        assert (
            await ada.page.evaluate(
                "document.querySelector('#nick').getAttribute('aria-invalid')"
            )
            == "true"
        )
        await check_axe(ada.page, axe, f"{viewport}, join dialog with a refused nick")
        assert ada.console_errors() == [], ada.console_errors()

    run_in_browser(scenario)
