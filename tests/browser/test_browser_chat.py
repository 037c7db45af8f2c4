"""The browser client in a real headless Chromium, against `chatstack serve` and the local
stack behind nginx: two pages chat, a reload shows history, markup stays text, a dropped
socket is reconnected without duplicates, a bad nick is refused, the CSP is respected.
"""

from __future__ import annotations

import asyncio
import secrets
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

from chat_page import ChatPage, check_shown_once_in_order
from chatstack.probe.client import ChatClient
from chatstack.probe.target import Target
from chromium_cdp import Browser

REPO = Path(__file__).resolve().parents[2]
CONTRACT = tomllib.loads((REPO / "services/chatstack/contract.toml").read_text())
RECHECK_MS = int(CONTRACT["protocol"]["recovery_recheck_ms"])
# An attacker's message: executable if it were ever parsed as HTML.
MARKUP = "<b>x</b><img src=x onerror=\"document.title='pwned'\">"


STATE_RECORDER = """(() => {
  const status = document.querySelector('#status');
  window.statesSeen = [];
  new MutationObserver(() => window.statesSeen.push(status.dataset.state))
    .observe(status, {attributes: true, attributeFilter: ['data-state']});
  return true;
})()"""


def room_name(test: str) -> str:
    return f"browser-{test}-{secrets.token_hex(4)}"


def test_two_pages_chat_and_a_reload_shows_history(
    run_in_browser: Any, site: Any
) -> None:
    room = room_name("chat")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada")
        bob = await ChatPage.open(browser, site.url, "bob")
        await ada.join(room, "ada")
        await bob.join(room, "bob")
        await ada.page.wait_for(
            "!!document.querySelector('#presence li[data-nick=\"bob\"]')",
            "ada sees bob join",
        )

        await ada.say("hello from ada")
        await bob.wait_texts(["hello from ada"])
        await bob.say("hi ada, bob here")
        texts = ["hello from ada", "hi ada, bob here"]
        shown = {p.name: await p.wait_texts(texts) for p in (ada, bob)}
        check_shown_once_in_order([ada, bob], shown)
        assert [m["nick"] for m in shown["ada"]] == ["ada", "bob"]
        for page in (ada, bob):
            assert await page.count("#outbox li") == 0, (
                f"{page.name}: a say was never acked"
            )

        # Reload: the tab re-joins its rooms and shows them from history.
        await bob.page.reload()
        await bob.wait_online()
        await bob.wait_joined(room, "bob")
        shown["bob"] = await bob.wait_texts(texts)
        # A new tab that joins by hand sees the history too.
        cy = await ChatPage.open(browser, site.url, "cy")
        await cy.join(room, "cy")
        shown["cy"] = await cy.wait_texts(texts)
        check_shown_once_in_order([ada, bob, cy], shown)

        for page in (ada, bob, cy):
            assert page.console_errors() == [], (
                f"{page.name} console: {page.console_errors()}"
            )

    run_in_browser(scenario)


def test_markup_in_a_message_is_shown_as_text(run_in_browser: Any, site: Any) -> None:
    room = room_name("markup")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada")
        bob = await ChatPage.open(browser, site.url, "bob")
        await ada.join(room, "ada")
        await bob.join(room, "bob")
        await ada.say(MARKUP)
        await bob.wait_texts([MARKUP])
        # Live (both pages), then from history (after a reload).
        await bob.page.reload()
        await bob.wait_online()
        await bob.wait_joined(room, "bob")
        for page in (ada, bob):
            [message] = await page.wait_texts([MARKUP])
            assert message["text"] == MARKUP
            assert message["elements"] == 0, f"{page.name}: the text created elements"
            assert await page.count("#messages b, #messages img") == 0
            assert "pwned" not in await page.page.evaluate("document.title")
            assert page.console_errors() == [], (
                f"{page.name} console: {page.console_errors()}"
            )

    run_in_browser(scenario)


def test_reconnect_after_the_server_drops_the_socket_shows_no_duplicates(
    run_in_browser: Any, site: Any
) -> None:
    """The page reconnects, re-joins, recovers what it missed with after= (re-reading the
    overlap it already showed) and resends the say typed while away, each message once."""
    room = room_name("reconnect")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada")
        bob = await ChatPage.open(browser, site.url, "bob")
        await ada.join(room, "ada")
        await bob.join(room, "bob")
        await ada.say("m1 before the drop")
        await bob.wait_texts(["m1 before the drop"])
        await bob.say("m2 before the drop")
        await ada.wait_texts(["m1 before the drop", "m2 before the drop"])

        dropped = await ada.text_of("#instance")
        # Record every status change: behind nginx the reconnect can be quicker than a poll.
        await ada.page.evaluate(STATE_RECORDER)
        site.drop(dropped)
        await ada.page.wait_for(
            "window.statesSeen.includes('reconnecting')",
            "ada notices the dropped socket",
        )
        await ada.say("m3 typed while away")
        site.restore()
        # Someone else talks as soon as the service is back; ada may or may not be back yet.
        target = Target(site.url, site.url, 10.0)
        zed = await ChatClient.connect(target, "zed")
        try:
            await zed.join(room, "zed")
            await zed.say(room, "m4 from zed after the drop")
        finally:
            await zed.close()

        texts = ["m1 before the drop", "m2 before the drop", "m3 typed while away"]
        texts.append("m4 from zed after the drop")
        await ada.wait_online(timeout=40)
        shown = {p.name: await p.wait_texts(texts, timeout=40) for p in (ada, bob)}
        check_shown_once_in_order([ada, bob], shown)
        if site.kind == "stack":
            assert await ada.text_of("#instance") not in ("", dropped)
        # The rereads (until history answered live twice) must not add anything either.
        await asyncio.sleep(2 * RECHECK_MS / 1000 + 1)
        shown = {p.name: await p.shown() for p in (ada, bob)}
        check_shown_once_in_order([ada, bob], shown)
        assert sorted(m["text"] for m in shown["ada"]) == sorted(texts)
        assert await ada.count("#outbox li") == 0, (
            "the say typed while away was not acked"
        )
        for page in (ada, bob):
            errors = page.console_errors(outage=True)
            assert errors == [], f"{page.name} console: {errors}"

    run_in_browser(scenario)


def test_a_bad_nick_is_refused_in_words_before_sending(
    run_in_browser: Any, site: Any
) -> None:
    room = room_name("errors")

    async def scenario(browser: Browser) -> None:
        page = await ChatPage.open(browser, site.url, "page")
        await page.fill_join(room, "bad nick!")
        problem = await page.text_of("#join-problem")
        assert problem.startswith("A nick can't contain a space."), problem
        assert await page.count("#rooms button") == 0, (
            "a refused join left a room behind"
        )
        await page.join(room, "good-nick")
        assert await page.count("#rooms button") == 1
        assert await page.count("#errors li") == 0

    run_in_browser(scenario)


def test_two_rooms_on_one_page_and_leave(run_in_browser: Any, site: Any) -> None:
    """Messages go to their room's list; the other room's tab is marked; leave removes it."""
    first, second = room_name("first"), room_name("second")

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada")
        bob = await ChatPage.open(browser, site.url, "bob")
        await ada.join(first, "ada")
        await ada.join(second, "ada2")
        await bob.join(second, "bob")
        await ada.page.click(f"#rooms button[data-room='{first}']")
        await bob.say("only in the second room")
        await ada.page.wait_for(
            f"document.querySelector(\"#rooms button[data-room='{second}']\")"
            ".classList.contains('unread')",
            "the second room's tab marked unread",
        )
        assert await ada.shown() == [], "a message of the other room shown in this one"
        await ada.page.click(f"#rooms button[data-room='{second}']")
        [message] = await ada.wait_texts(["only in the second room"])
        assert message["nick"] == "bob"
        assert (await ada.text_of("#room-title")) == second
        assert (await ada.text_of("#room-you")) == "you are ada2"

        await ada.page.click("#leave")
        await bob.page.wait_for(
            "!document.querySelector('#presence li[data-nick=\"ada2\"]')",
            "bob sees ada2 leave",
        )
        assert await ada.count("#rooms button") == 1
        assert (await ada.text_of("#room-title")) == first
        assert (await ada.text_of("#room-you")) == "you are ada"
        for page in (ada, bob):
            assert page.console_errors() == [], (
                f"{page.name} console: {page.console_errors()}"
            )

    run_in_browser(scenario)


def test_the_page_is_served_with_the_csp_it_runs_under(site: Any) -> None:
    """The other tests assert a clean console; that only proves CSP-compliance if the page
    really came with the policy."""
    with urllib.request.urlopen(site.url + "/", timeout=10) as response:
        csp = response.headers["Content-Security-Policy"]
    assert csp == CONTRACT["proxy"]["headers"]["Content-Security-Policy"]
