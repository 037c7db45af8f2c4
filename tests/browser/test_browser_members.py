"""Who is here and one nick per person in a room (issue 11, items 1 and 2), in real
Chromium at desktop size and on a 390 px phone, against the local stack (two gateways
behind nginx): the people list holds whoever joined earlier and whoever is on the other
gateway, follows leaves, and a nick someone holds is refused in words (nick_taken).
Screenshots and console logs are kept on failure (conftest.py run_in_browser).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from chat_page import ChatPage
from chromium_cdp import Browser

pytestmark = [
    pytest.mark.parametrize("site", ["stack"], indirect=True),
    pytest.mark.parametrize("viewport", ["desktop", "phone"]),
]

PEOPLE = "[...document.querySelectorAll('#presence li')].map((li) => li.dataset.nick)"


async def wait_people(page: ChatPage, nicks: list[str]) -> None:
    await page.page.wait_for(
        f"JSON.stringify({PEOPLE}) === {json.dumps(json.dumps(sorted(nicks), separators=(',', ':')))}",
        f"{page.name}: people {sorted(nicks)}",
        timeout=15,
    )


async def instance_of(page: ChatPage) -> str:
    return await page.text_of("#instance")


async def open_on_another_gateway(
    browser: Browser, url: str, name: str, viewport: str, other: str
) -> ChatPage:
    """A page served by a gateway other than ``other`` (nginx round-robins)."""
    for _ in range(6):
        page = await ChatPage.open(browser, url, name, viewport)
        await page.page.wait_for(
            "document.querySelector('#instance').textContent !== ''",
            f"{name}: instance",
        )
        if await instance_of(page) != other:
            return page
        await page.page.close()
    raise AssertionError(f"nginx kept putting {name} on {other}")


def test_people_across_gateways_and_nick_taken(
    run_in_browser: Any, site: Any, viewport: str
) -> None:
    room = f"people-{secrets.token_hex(3)}"

    async def scenario(browser: Browser) -> None:
        ada = await ChatPage.open(browser, site.url, "ada", viewport)
        await ada.join(room, "ada")
        await wait_people(ada, ["ada"])
        ada_gateway = await instance_of(ada)
        bob = await open_on_another_gateway(
            browser, site.url, "bob", viewport, ada_gateway
        )
        await bob.join(room, "bob")
        # ada joined earlier, on the other gateway: bob sees her at once, and she him.
        await wait_people(bob, ["ada", "bob"])
        await wait_people(ada, ["ada", "bob"])

        # Someone else asking for ada's nick (on either gateway) is told in words.
        imp = await ChatPage.open(browser, site.url, "imp", viewport)
        await imp.fill_join(room, "ada")
        await imp.page.wait_for(
            "!!document.querySelector('#errors li[data-code=\"nick_taken\"]')",
            "imp: nick_taken shown",
        )
        shown = await imp.page.evaluate(
            "document.querySelector('#errors li').firstChild.textContent"
        )
        assert shown.startswith("Someone in that room already uses this nick"), shown
        assert await imp.count("#rooms button") == 0, "the refused room stayed"
        await imp.join(room, "ada2")
        await wait_people(ada, ["ada", "ada2", "bob"])

        # A reload is the same person (its token is kept per tab): the nick comes back.
        await bob.page.reload()
        await bob.wait_online()
        await bob.wait_joined(room, "bob")
        await wait_people(bob, ["ada", "ada2", "bob"])

        await bob.page.close()
        await wait_people(ada, ["ada", "ada2"])
        await wait_people(imp, ["ada", "ada2"])
        for page in (ada, imp):
            assert page.console_errors() == [], f"{page.name}: {page.console_errors()}"

    run_in_browser(scenario)
