"""What a user of the client expects (issue 11, items 4-10), in real Chromium at desktop
size and on a 390 px phone (CDP Emulation.setDeviceMetricsOverride), against
`chatstack serve`: the UI does not depend on what is behind the origin, and the stack's
failover is covered by test_browser_chat.py. Screenshots and console logs are kept on
failure (conftest.py run_in_browser).
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any

import pytest
from axe_check import check_axe
from chat_page import ChatPage, set_viewport
from chatstack.probe.client import ChatClient
from chatstack.probe.target import Target
from chromium_cdp import Browser, Page

REPO = Path(__file__).resolve().parents[2]
CONTRACT = tomllib.loads((REPO / "services/chatstack/contract.toml").read_text())
MAX_ROOMS = int(CONTRACT["limits"]["max_rooms"])

pytestmark = [
    pytest.mark.parametrize("site", ["embedded"], indirect=True),
    pytest.mark.parametrize("viewport", ["desktop", "phone"]),
]

NO_HORIZONTAL_SCROLL = (
    "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)
# Every visible control lies inside the viewport (nothing reachable only by scrolling sideways).
CONTROLS_OUTSIDE = """[...document.querySelectorAll('button, input, textarea, summary, a')]
  .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; })
  .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth + 0.5; })
  .map((e) => e.id || e.textContent.trim())"""
BOX_DISTANCE = """(() => { const b = document.querySelector('#messages');
  return b.scrollHeight - b.scrollTop - b.clientHeight; })()"""


def room_name(test: str) -> str:
    return f"ui-{test}-{secrets.token_hex(3)}"


async def talk(site: Any, room: str, nick: str, texts: list[str]) -> None:
    """Someone else (a protocol client, not a page) says texts in room."""
    client = await ChatClient.connect(Target(site.url, site.url, 10.0), nick)
    try:
        await client.join(room, nick)
        for text in texts:
            await client.say(room, text)
    finally:
        await client.close()


async def attribute(page: Page, selector: str, name: str) -> Any:
    return await page.evaluate(
        f"document.querySelector({json.dumps(selector)})?.getAttribute({json.dumps(name)})"
    )


def test_layout_rooms_and_people_reachable_without_horizontal_scroll(
    run_in_browser: Any, site: Any, viewport: str, axe: str
) -> None:
    """Item 4: from 360 px up every room and member is reachable and nothing scrolls sideways."""
    first, second = room_name("first"), room_name("second")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        await check_axe(ada.page, axe, f"{viewport}, first visit (join dialog)")
        await ada.join(first, "ada")
        await ada.join(second, "ada")
        await talk(site, second, "bob", ["hello ada, " + "long words " * 30])
        await ada.wait_texts(["hello ada, " + "long words " * 30])
        widths = [360, 390] if viewport == "phone" else [1200]
        for width in widths:
            await set_viewport(ada.page, viewport, width)
            assert await ada.page.evaluate(NO_HORIZONTAL_SCROLL), f"{width} px scrolls"
            outside = await ada.page.evaluate(CONTROLS_OUTSIDE)
            assert outside == [], f"{width} px: controls off screen: {outside}"
        phone = viewport == "phone"
        assert await ada.visible("#rooms-panel") is not phone
        assert await ada.visible("#people-panel") is not phone
        assert await ada.visible("#toggle-rooms") is phone

        # Switch rooms with the pointer only (no retyping), then see who is here.
        await ada.show_room(first)
        assert (
            await attribute(
                ada.page, f"#rooms button[data-room='{first}']", "aria-current"
            )
            == "true"
        )
        assert await ada.visible("#text")
        if phone:
            assert not await ada.visible("#rooms-panel"), (
                "choosing a room closes the panel"
            )
            await ada.page.click("#toggle-people")
            assert (
                await attribute(ada.page, "#toggle-people", "aria-expanded") == "true"
            )
        assert await ada.visible("#presence li[data-nick='ada']")
        await check_axe(ada.page, axe, f"{viewport}, a room with the people list shown")
        if phone:
            await ada.page.click("#toggle-rooms")
            assert await ada.visible(f"#rooms button[data-room='{second}']")
            assert not await ada.visible("#people-panel"), "one panel at a time"
            assert await ada.page.evaluate(NO_HORIZONTAL_SCROLL)
        assert ada.console_errors() == [], ada.console_errors()

    run_in_browser(scenario)


def test_nick_is_per_tab_and_you_is_unambiguous(
    run_in_browser: Any, site: Any, viewport: str
) -> None:
    """Item 5: a second tab does not inherit the first one's nick; only what this tab
    said is marked "(you)", also after a reload."""
    room = room_name("you")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        await ada.join(room, "ada")
        await ada.say("from ada")
        tab2 = await ChatPage.open(browser, site.url, "tab2", viewport)
        prefilled = await tab2.page.evaluate("document.querySelector('#nick').value")
        assert prefilled != "ada" and prefilled.startswith("guest-"), prefilled
        await tab2.join(room, "bob")
        await tab2.say("from bob")
        for page, mine in ((ada, "from ada"), (tab2, "from bob")):
            await page.wait_texts(["from ada", "from bob"])
            await page.page.wait_for(
                "JSON.stringify([...document.querySelectorAll('#messages li.message')]"
                ".filter((li) => li.classList.contains('own') && li.querySelector('.you'))"
                f".map((li) => li.querySelector('.text').textContent)) === '{json.dumps([mine])}'",
                f"{page.name} marks only {mine!r} as its own",
            )
            assert "you are" in await page.text_of("#room-you")
        assert await ada.text_of("#presence li[data-nick='ada']") == "ada(you)"
        assert await ada.text_of("#presence li[data-nick='bob']") == "bob"
        await ada.page.reload()
        await ada.wait_joined(room, "ada")
        await ada.wait_texts(["from ada", "from bob"])
        assert await ada.count("#messages li.own") == 1, "own mark lost on reload"

    run_in_browser(scenario)


def test_scrolling_follows_the_reader(
    run_in_browser: Any, site: Any, viewport: str
) -> None:
    """Item 6: new messages are followed at the bottom; while reading back they are not
    forced on the reader but announced by the "new messages" button; sending jumps down,
    and an own message that wraps is followed to its last line."""
    room = room_name("scroll")
    lines = "\n".join(f"line {n}" for n in range(8))

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        await ada.join(room, "ada")
        texts = [f"{n}: {lines}" for n in range(8)]
        await talk(site, room, "bob", texts)
        await ada.wait_texts(texts)
        await ada.page.wait_for(f"{BOX_DISTANCE} <= 24", "follows new messages")

        await ada.page.evaluate("document.querySelector('#messages').scrollTop = 0")
        await ada.page.wait_for(
            "document.querySelector('#new-below').hidden", "no marker yet"
        )
        await talk(site, room, "bob", ["while ada reads back"])
        await ada.wait_texts(["while ada reads back"])
        await ada.page.wait_for(
            "!document.querySelector('#new-below').hidden", "the new messages marker"
        )
        assert (
            await ada.page.evaluate("document.querySelector('#messages').scrollTop")
            == 0
        )
        await ada.page.click("#new-below")
        await ada.page.wait_for(f"{BOX_DISTANCE} <= 24", "the marker jumps down")
        assert await ada.page.evaluate("document.querySelector('#new-below').hidden")

        await ada.page.evaluate("document.querySelector('#messages').scrollTop = 0")
        wrapping = "a long line that wraps " * 40
        await ada.page.fill("#text", wrapping)
        await ada.press_enter()
        await ada.wait_texts([wrapping])
        await ada.page.wait_for(
            "document.querySelectorAll('#outbox li').length === 0", "ack"
        )
        await ada.page.wait_for(f"{BOX_DISTANCE} <= 24", "own wrapped message followed")

    run_in_browser(scenario)


RECORDER = """(() => {
  const status = document.querySelector('#status');
  window.seen = [];
  new MutationObserver(() => window.seen.push(
      [status.dataset.state, status.dataset.retryAt ?? 'trying', Date.now()]))
    .observe(status, {attributes: true, attributeFilter: ['data-state', 'data-retry-at']});
  return true;
})()"""
REMAINING_MS = (
    "Number(document.querySelector('#status').dataset.retryAt ?? 0) - Date.now()"
)
# What backoff.js answers for attempts 0..9 with the lowest and highest random draw.
BACKOFF = """(async () => {
  const { reconnectDelay } = await import('./backoff.js');
  const at = (r) => [...Array(10).keys()].map((a) => reconnectDelay(a, 1006, () => r));
  return { low: at(0), high: at(0.999999), restart: reconnectDelay(7, 1012, () => 0.5) };
})()"""


def test_reconnect_counts_down_and_retries_at_once_when_asked(
    run_in_browser: Any, site: Any, viewport: str
) -> None:
    """Item 7: quick first retries, then jittered backoff; a live countdown; "Retry now",
    the browser going online and the tab becoming visible each try at once; codes only
    in the details."""
    room = room_name("reconnect")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        backoff = await ada.page.evaluate(BACKOFF)
        low, high = backoff["low"], backoff["high"]
        assert all(d < 1000 for d in high[:3]), f"first retries not quick: {high[:3]}"
        assert all(0 < a < b for a, b in zip(low, high, strict=True)), "no jitter"
        assert low[3:] == sorted(low[3:]) and high[9] > 4 * high[3], "no backoff"
        assert max(high) <= 30000 and backoff["restart"] < 1000
        await ada.join(room, "ada")
        await ada.page.evaluate(RECORDER)

        site.drop("")
        await ada.page.wait_for(
            f"{REMAINING_MS} > 1500", "waiting for a later retry", 30
        )
        assert await ada.visible("#retry")
        status = await ada.text_of("#status")
        assert status == "Connection lost.", status
        assert re.search(r"\(code 10\d\d\)", await ada.text_of("#close-code"))
        counted = int(re.findall(r"\d+", await ada.text_of("#countdown"))[0])
        await ada.page.wait_for(
            f"Number(document.querySelector('#countdown').textContent.match(/\\d+/)[0]) < {counted}",
            "the countdown counts down",
        )
        triggers = {
            "retry button": "document.querySelector('#retry').click()",
            "online event": "window.dispatchEvent(new Event('online'))",
            "tab visible": "document.dispatchEvent(new Event('visibilitychange'))",
        }
        for what, trigger in triggers.items():
            due = await ada.page.evaluate(
                "Number(document.querySelector('#status').dataset.retryAt)"
            )
            await ada.page.evaluate(f"window.seen = []; {trigger}; true")
            tried = await ada.page.wait_for(
                "window.seen.find((s) => s[1] === 'trying')", f"{what}: an attempt"
            )
            assert tried[2] < due, f"{what}: tried at {tried[2]}, not before {due}"
            await ada.page.wait_for(f"{REMAINING_MS} > 0", f"{what}: next countdown")
        site.restore()
        await ada.page.evaluate("document.querySelector('#retry').click(); true")
        await ada.wait_online()
        assert await ada.text_of("#status") == "Connected"
        assert not await ada.visible("#retry") and await ada.text_of("#countdown") == ""
        await ada.wait_joined(room, "ada")

    run_in_browser(scenario)


def test_words_not_codes(run_in_browser: Any, site: Any, viewport: str) -> None:
    """Item 8: nick and room checked against the contract's patterns before sending, in
    words; server refusals in words with the code behind "details"; no instance name on
    show."""
    room = room_name("words")

    async def scenario(browser: Browser) -> None:
        page = await ChatPage.open(browser, site.url, "page", viewport)
        refused = {
            ("bad nick", room): "can't contain a space",
            ("Zoë", room): "can't contain “ë”",
            ("ada", "général"): "can't contain “é”",
        }
        for (nick, name), words in refused.items():
            await page.fill_join(name, nick)
            problem = await page.text_of("#join-problem")
            assert words in problem, problem
            assert "^[" not in problem and "bad_" not in problem
            assert await page.page.evaluate(
                "document.querySelector('#join-dialog').open"
            )
            invalid = await page.count("#join-form [aria-invalid='true']")
            assert invalid == 1, f"{nick!r}/{name!r}: {invalid} fields marked invalid"
        assert (
            await page.count("#rooms button") == 0
            and await page.count("#errors li") == 0
        )

        # The server's own refusal: one room more than a connection may hold.
        for n in range(MAX_ROOMS):
            await page.join(f"{room}-{n}", "page")
        await page.fill_join(f"{room}-extra", "page")
        await page.page.wait_for(
            "!!document.querySelector('#errors li[data-code=\"too_many_rooms\"]')",
            "too_many_rooms shown",
        )
        shown = await page.page.evaluate(
            "document.querySelector('#errors li').firstChild.textContent"
        )
        assert shown.startswith("You are in as many rooms"), shown
        assert "too_many_rooms" in await page.text_of("#errors li details")
        assert await page.count("#rooms button") == MAX_ROOMS
        instance = await page.text_of("#instance")
        assert instance and not await page.visible("#instance"), "instance on show"
        assert await page.text_of("#status") == "Connected"

    run_in_browser(scenario)


def test_what_people_expect_of_a_chat(
    run_in_browser: Any, site: Any, viewport: str
) -> None:
    """Item 9: day separators, multi-line input, safe links, nick colours, focus after
    joining, unread counts and title badge without false unread marks after a reload."""
    here, there = room_name("here"), room_name("there")
    link_text = (
        "(see https://example.org/a_(b)?q=1). <i>x</i> javascript:alert(1) "
        "http://[bad ftp://example.org/f"
    )

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        await ada.join(there, "ada")
        await ada.join(here, "ada")
        focused = await ada.page.evaluate("document.activeElement.id")
        assert focused == "text", f"focus after joining: {focused}"

        # Multi-line: Shift+Enter is a new line, Enter sends.
        await ada.page.evaluate("document.querySelector('#text').focus()")
        await ada.page.call("Input.insertText", text="first line")
        await ada.press_enter(shift=True)
        await ada.page.call("Input.insertText", text="second line")
        await ada.press_enter()
        [message] = await ada.wait_texts(["first line\nsecond line"])  # one message
        assert message["nick"] == "ada"
        assert await ada.page.evaluate("document.querySelector('#text').value") == ""

        await talk(site, here, "bob", [link_text])
        await ada.wait_texts([link_text])
        links = await ada.page.evaluate(
            "[...document.querySelectorAll('#messages a')].map((a) =>"
            " [a.getAttribute('href'), a.rel, a.target, a.textContent, a.childElementCount])"
        )
        url = "https://example.org/a_(b)?q=1"
        assert links == [[url, "noopener noreferrer", "_blank", url, 0]], links
        assert await ada.count("#messages .text *:not(a)") == 0, "markup from text"
        [shown] = [m for m in await ada.shown() if m["text"] == link_text]
        assert shown["text"] == link_text

        colours = await ada.page.evaluate(
            "[...document.querySelectorAll('#messages .nick')].map((n) =>"
            " [n.textContent, n.className, getComputedStyle(n).color])"
        )
        by_nick = {nick: (cls, colour) for nick, cls, colour in colours}
        assert all(re.fullmatch(r"nick nick-[0-7]", cls) for cls, _ in by_nick.values())
        assert len(colours) == 2 and by_nick["ada"] != by_nick["bob"], colours

        # Day separators: one before today's first message; the labels of other days.
        assert (
            await ada.page.evaluate(
                "[...document.querySelectorAll('#messages ol:not([hidden]) > li.day')]"
                ".map((d) => d.textContent).join()"
            )
            == "Today"
        )
        labels = await ada.page.evaluate(
            """(async () => { const d = await import('./days.js');
            const now = new Date(2026, 2, 1, 0, 30);
            const list = document.createElement('ol');
            for (const t of [new Date(2025, 11, 31, 23), new Date(2026, 1, 28, 23, 59),
                             new Date(2026, 2, 1, 0, 1), new Date(2026, 2, 1, 0, 2)]) {
              const li = document.createElement('li');
              li.dataset.day = d.dayKey(t); li.dataset.ts = String(t.getTime());
              list.append(li);
            }
            d.renderDays(list, now); d.renderDays(list, now);
            return [...list.querySelectorAll('li.day')].map((x) => x.textContent); })()"""
        )
        assert labels[1:] == ["Yesterday", "Today"] and "2025" in labels[0], labels

        # Unread: bob talks in the room ada is not looking at.
        await talk(site, there, "bob", ["unread one", "unread two"])
        badge = f"#rooms button[data-room='{there}'] .badge"
        await ada.page.wait_for(
            f"document.querySelector({json.dumps(badge)}).textContent === '2 unread'",
            "2 unread on the other room",
        )
        assert await ada.page.evaluate("document.title") == "(2) chatstack"
        assert await ada.count(f"#rooms button[data-room='{here}'].unread") == 0
        # A reload keeps true unread and invents none.
        await ada.page.reload()
        await ada.wait_joined(there, "ada")
        await ada.wait_joined(here, "ada")
        await ada.page.wait_for(
            f"document.querySelector({json.dumps(badge)}).textContent === '2 unread'",
            "still 2 unread after a reload",
        )
        await ada.show_room(there)
        await ada.wait_texts(["unread one", "unread two"])
        assert await ada.page.evaluate("document.title") == "chatstack"
        await ada.page.reload()
        await ada.wait_joined(here, "ada")
        await ada.wait_texts(["unread one", "unread two"])
        # The room not on screen has read its history back too (hidden list).
        await ada.page.wait_for(
            f"document.querySelectorAll('#messages ol[data-room={json.dumps(here)}] li.message')"
            ".length === 2",
            "the other room's history",
        )
        assert await ada.count("#rooms button.unread") == 0, "false unread after reload"
        assert await ada.page.evaluate("document.title") == "chatstack"
        assert ada.console_errors() == [], ada.console_errors()

    run_in_browser(scenario)
