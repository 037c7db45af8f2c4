"""Headless Chromium driven over the Chrome DevTools Protocol, with tornado's websocket client.

Why not chromedriver/selenium/playwright: CDP over one websocket needs no extra Python
dependency (tornado is already one) and no downloaded browser; Debian's /usr/bin/chromium
is the browser. One browser process, one websocket; each page is a target attached with
``flatten`` sessions, so messages carry a ``sessionId``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tornado.websocket import WebSocketClientConnection, websocket_connect

# The flags this machine needs: without the background-networking ones Chromium's own
# connections are refused by the closed network and it stalls; root needs --no-sandbox.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
]
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


def chromium_binary() -> str | None:
    """$CHROMIUM when set (None if it is not there), else chromium on PATH."""
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        return shutil.which(chosen)
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CDPError(Exception):
    pass


class Page:
    """One tab. ``console`` collects console messages, log entries and uncaught exceptions."""

    def __init__(self, browser: Browser, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        self.console: list[str] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.call(method, params, session_id=self.session_id)

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            values = [
                str(a.get("value", a.get("description", ""))) for a in params["args"]
            ]
            self.console.append(f"console.{params['type']}: {' '.join(values)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get(
                "text"
            )
            self.console.append(f"exception: {text}")
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(
                f"log.{entry['level']} ({entry['source']}): {entry['text']}"
            )
        for waiter in list(self._waiters):
            name, future = waiter
            if name == method and not future.done():
                future.set_result(params)
                self._waiters.remove(waiter)

    def expect_event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append((method, future))
        return future

    async def navigate(self, url: str) -> None:
        loaded = self.expect_event("Page.loadEventFired")
        result = await self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(loaded, CALL_TIMEOUT_S)

    async def reload(self) -> None:
        loaded = self.expect_event("Page.loadEventFired")
        await self.call("Page.reload", ignoreCache=True)
        await asyncio.wait_for(loaded, CALL_TIMEOUT_S)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited), as JSON-able data."""
        result = await self.call(
            "Runtime.evaluate",
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get(
                "text"
            )
            raise CDPError(f"{expression[:80]!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 10.0) -> Any:
        """Poll ``expression`` until it is truthy; its value, else AssertionError naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not within {timeout}s (last value {value!r})"
                )
            await asyncio.sleep(0.05)

    async def fill(self, selector: str, text: str) -> None:
        """Type into an input as a user would: focus it, clear it, insert the text."""
        await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.focus(); e.select(); return true; })()"
        )
        await self.call("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        """A real mouse click at the element's centre (not element.click())."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2, e.disabled === true]; })()"
        )
        x, y, disabled = box
        if disabled:
            raise AssertionError(f"{selector} is disabled")
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=x,
                y=y,
                button="left",
                clickCount=1,
            )

    async def screenshot(self, path: Path) -> None:
        # A background tab may never paint in headless mode: bring it to the front first.
        await self.call("Page.bringToFront")
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))

    async def close(self) -> None:
        await self.browser.call("Target.closeTarget", {"targetId": self.target_id})


class Browser:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.profile = Path(tempfile.mkdtemp(prefix="chatstack-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = self.profile / "chromium-stderr.log"
        self.pages: list[Page] = []
        self._ws: WebSocketClientConnection | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[str, Page] = {}
        self._reader: asyncio.Task[None] | None = None

    def _launch(self) -> subprocess.Popen[bytes]:
        with self.stderr_path.open("wb") as stderr:
            return subprocess.Popen(
                [
                    self.binary,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={self.profile / 'profile'}",
                    "--remote-debugging-port=0",
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    async def start(self) -> None:
        self.proc = self._launch()
        port_file = self.profile / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None:
                raise CDPError(
                    f"chromium exited {self.proc.returncode}: see {self.stderr_path}"
                )
            if time.monotonic() > deadline:
                raise CDPError(
                    f"chromium did not open its DevTools port: see {self.stderr_path}"
                )
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = await websocket_connect(
            f"ws://127.0.0.1:{port}{path}", max_message_size=256 * 1024 * 1024
        )
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        while True:
            raw = await self._ws.read_message()
            if raw is None:
                for future in self._calls.values():
                    if not future.done():
                        future.set_exception(CDPError("DevTools connection closed"))
                return
            message = json.loads(raw)
            if "id" in message:
                future = self._calls.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(CDPError(str(message["error"])))
                    else:
                        future.set_result(message.get("result", {}))
            elif "sessionId" in message and message["sessionId"] in self._sessions:
                self._sessions[message["sessionId"]]._event(
                    message["method"], message["params"]
                )

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        assert self._ws is not None
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._calls[call_id] = future
        message: dict[str, Any] = {
            "id": call_id,
            "method": method,
            "params": params or {},
        }
        if session_id is not None:
            message["sessionId"] = session_id
        await self._ws.write_message(json.dumps(message))
        try:
            return await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except TimeoutError:
            raise CDPError(f"{method}: no answer within {CALL_TIMEOUT_S}s") from None

    async def new_page(self) -> Page:
        target = await self.call("Target.createTarget", {"url": "about:blank"})
        attached = await self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, target["targetId"], attached["sessionId"])
        self._sessions[page.session_id] = page
        self.pages.append(page)
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")
        return page

    async def save_artifacts(self, directory: Path) -> None:
        """Screenshot and console log of every page, for a failed test."""
        directory.mkdir(parents=True, exist_ok=True)
        for n, page in enumerate(self.pages, start=1):
            (directory / f"page{n}-console.log").write_text(
                "\n".join(page.console) + "\n"
            )
            try:
                await page.screenshot(directory / f"page{n}.png")
            except (CDPError, TimeoutError) as exc:
                (directory / f"page{n}-screenshot-error.txt").write_text(str(exc))
        if self.stderr_path.exists():
            shutil.copy(self.stderr_path, directory / "chromium-stderr.log")

    async def close_pages(self) -> None:
        for page in self.pages:
            try:
                await page.close()
            except CDPError:
                pass
            self._sessions.pop(page.session_id, None)
        self.pages = []

    async def stop(self) -> None:
        if self._ws is not None:
            try:
                await asyncio.wait_for(self.call("Browser.close"), 5)
            except (CDPError, TimeoutError):
                pass
            self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
