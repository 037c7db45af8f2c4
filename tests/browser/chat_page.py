"""The chat client as a user sees it, through the DOM ids documented in index.html."""

from __future__ import annotations

import json
from typing import Any

from chromium_cdp import Browser, Page

ONLINE = "document.querySelector('#status').dataset.state === 'online'"
# Messages of the room on screen, in DOM order, with what a user sees of them.
SHOWN = """[...document.querySelectorAll('#messages ol:not([hidden]) li.message')].map(li => ({
  id: li.dataset.id,
  nick: li.querySelector('.nick').textContent,
  text: li.querySelector('.text').textContent,
  elements: li.querySelector('.text').childElementCount,
}))"""
# Console entries that are expected while a server is down (the browser logs failed
# websocket attempts and the aborted socket); anything else at error level is a bug.
OUTAGE_NOISE = ("WebSocket connection to", "Failed to load resource")


# Keys the tests press: virtual key code and the text a keyDown inserts.
KEYS = {"Enter": (13, "\r"), "Tab": (9, ""), "Escape": (27, "")}
# Viewports of the UI tests: (width, height, mobile). CSS px; a phone is 390 wide.
VIEWPORTS = {"desktop": (1200, 900, False), "phone": (390, 844, True)}


class ChatPage:
    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name

    @classmethod
    async def open(
        cls, browser: Browser, url: str, name: str, viewport: str = "desktop"
    ) -> ChatPage:
        page = await browser.new_page()
        await set_viewport(page, viewport)
        await page.navigate(url + "/")
        chat = cls(page, name)
        await chat.wait_online()
        return chat

    async def wait_online(self, timeout: float = 15) -> None:
        await self.page.wait_for(ONLINE, f"{self.name}: #status online", timeout)

    async def open_join_dialog(self) -> None:
        """The "+ join room" control; on a narrow screen it is in the rooms panel."""
        if await self.page.evaluate("document.querySelector('#join-dialog').open"):
            return
        if not await self.visible("#add-room"):
            await self.page.click("#toggle-rooms")
        await self.page.click("#add-room")
        await self.page.wait_for(
            "document.querySelector('#join-dialog').open",
            f"{self.name}: join dialog open",
        )

    async def fill_join(self, room: str, nick: str) -> None:
        await self.open_join_dialog()
        await self.page.fill("#nick", nick)
        await self.page.fill("#room", room)
        await self.page.click("#join")

    async def join(self, room: str, nick: str) -> None:
        await self.fill_join(room, nick)
        await self.wait_joined(room, nick)

    async def visible(self, selector: str) -> bool:
        """Rendered with a size (not display:none, not in a closed panel or <details>)."""
        value: bool = await self.page.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e || !e.checkVisibility()) return false;"
            " const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; })()"
        )
        return value

    async def show_room(self, room: str) -> None:
        """Put a joined room on screen as a user would (the rooms panel on a phone)."""
        if not await self.visible("#rooms-panel"):
            await self.page.click("#toggle-rooms")
        await self.page.click(f"#rooms button[data-room={json.dumps(room)}]")

    async def wait_joined(self, room: str, nick: str, timeout: float = 15) -> None:
        # Our own presence is how the client knows it is in (docs/protocol.md).
        await self.page.wait_for(
            f"!!document.querySelector('#rooms button[data-room={json.dumps(room)}]')"
            f" && !!document.querySelector('#presence li[data-nick={json.dumps(nick)}]')",
            f"{self.name}: joined {room} as {nick}",
            timeout,
        )

    async def say(self, text: str) -> None:
        await self.page.fill("#text", text)
        await self.page.click("#send")

    async def press(self, key: str, shift: bool = False) -> None:
        """A real key press (Enter, Tab, Escape) in the focused element."""
        code, text = KEYS[key]
        for kind in ("keyDown", "keyUp"):
            await self.page.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=code,
                modifiers=8 if shift else 0,
                **({"text": text} if text and kind == "keyDown" else {}),
            )

    async def press_enter(self, shift: bool = False) -> None:
        await self.press("Enter", shift)

    async def focused(self) -> str:
        """The id of the focused element, else room:<name> for a room, else its tag."""
        focused: str = await self.page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.id || (e.dataset.room ? 'room:' + e.dataset.room : e.tagName); })()"
        )
        return focused

    async def accessible_name(self, selector: str) -> str:
        """The name assistive technology gets for the element (Chromium's AX tree)."""
        document = await self.page.call("DOM.getDocument", depth=0)
        node = await self.page.call(
            "DOM.querySelector", nodeId=document["root"]["nodeId"], selector=selector
        )
        tree = await self.page.call(
            "Accessibility.getPartialAXTree",
            nodeId=node["nodeId"],
            fetchRelatives=False,
        )
        name: str = tree["nodes"][0].get("name", {}).get("value", "")
        return name

    async def shown(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = await self.page.evaluate(SHOWN)
        return messages

    async def wait_texts(
        self, texts: list[str], timeout: float = 15
    ) -> list[dict[str, Any]]:
        """Wait until every text is shown; the messages on screen then."""
        await self.page.wait_for(
            f"(() => {{ const shown = new Set({SHOWN}.map(m => m.text));"
            f" return {json.dumps(texts)}.every(t => shown.has(t)); }})()",
            f"{self.name}: messages {texts} shown",
            timeout,
        )
        return await self.shown()

    async def text_of(self, selector: str) -> str:
        value: str = await self.page.evaluate(
            f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"
        )
        return value

    async def count(self, selector: str) -> int:
        value: int = await self.page.evaluate(
            f"document.querySelectorAll({json.dumps(selector)}).length"
        )
        return value

    def console_errors(self, outage: bool = False) -> list[str]:
        """Error-level console entries (CSP violations included); outage noise if allowed."""
        errors = [
            line
            for line in self.page.console
            if line.startswith(
                ("log.error", "exception", "console.error", "console.assert")
            )
        ]
        if outage:
            errors = [
                line for line in errors if not any(n in line for n in OUTAGE_NOISE)
            ]
        return errors


async def set_viewport(page: Page, viewport: str, width: int | None = None) -> None:
    default_width, height, mobile = VIEWPORTS[viewport]
    await page.call(
        "Emulation.setDeviceMetricsOverride",
        width=width or default_width,
        height=height,
        deviceScaleFactor=1,
        mobile=mobile,
    )


def check_shown_once_in_order(
    pages: list[ChatPage], shown: dict[str, list[dict[str, Any]]]
) -> None:
    """Each page shows each message once, in id order, and all pages the same list."""
    reference: list[str] | None = None
    for page in pages:
        ids = [m["id"] for m in shown[page.name]]
        texts = [m["text"] for m in shown[page.name]]
        assert len(ids) == len(set(ids)), f"{page.name} shows an id twice: {ids}"
        assert len(texts) == len(set(texts)), (
            f"{page.name} shows a message twice: {texts}"
        )
        assert ids == sorted(ids), (
            f"{page.name} does not show messages in id order: {ids}"
        )
        assert all(len(i) == 26 for i in ids), (
            f"{page.name}: data-id not a message id: {ids}"
        )
        if reference is None:
            reference = ids
        assert ids == reference, (
            f"{page.name} shows {ids}, {pages[0].name} shows {reference}"
        )
