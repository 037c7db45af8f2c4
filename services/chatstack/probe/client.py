"""A websocket chat client for the probe: connect, send frames, wait for frames.

Every frame the server sends is kept in ``frames`` (the full log), so flows can check
afterwards what arrived and how often. Waiting never blocks the reader: a background task
reads the socket and wakes the waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .report import FlowFailed
from .target import Target, unique_token

Frame = dict[str, Any]
SAME_ORIGIN = "same-origin"  # connect(origin=...) default: the Origin a browser would send
# Pause before resending a `say` answered `unavailable` (docs/protocol.md: "retry after a pause").
UNAVAILABLE_RETRY_S = 0.5


def check_welcome(frame: object) -> Frame:
    """The welcome frame with the fields docs/protocol.md promises, else FlowFailed."""
    if not isinstance(frame, dict) or frame.get("type") != "welcome":
        raise FlowFailed(f"first frame is not a welcome frame: {frame!r}")
    for key in ("conn", "instance"):
        if not isinstance(frame.get(key), str) or not frame[key]:
            raise FlowFailed(f"welcome.{key} is not a non-empty string: {frame!r}")
    limits = frame.get("limits")
    if not isinstance(limits, dict):
        raise FlowFailed(f"welcome.limits is not an object: {frame!r}")
    for key, kind in (("max_text_bytes", int), ("max_rooms", int), ("rate_per_s", (int, float))):
        value = limits.get(key)
        if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
            raise FlowFailed(f"welcome.limits.{key} is not a positive number: {limits!r}")
    burst = limits.get("burst")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise FlowFailed(f"welcome.limits.burst is not a positive integer: {limits!r}")
    return frame


def presence_of(room: str, nick: str, event: str) -> Callable[[Frame], bool]:
    """Matches the presence frame of ``nick`` joining or leaving ``room``."""

    def matches(frame: Frame) -> bool:
        return (
            frame["type"] == "presence"
            and frame.get("room") == room
            and frame.get("nick") == nick
            and frame.get("event") == event
        )

    return matches


class Pacer:
    """A cautious copy of the server's token bucket, so paced frames are never rate limited.

    It assumes one token fewer and a slower refill than announced: the server's bucket
    started a little earlier than ours and network jitter bunches frames up.
    """

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s * 0.8
        self._capacity = max(1.0, burst - 1.0)
        self._tokens = self._capacity
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def take(self) -> None:
        self._refill()
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self._rate)
            self._refill()
        self._tokens -= 1


class ChatClient:
    def __init__(self, name: str, conn: WebSocketClientConnection, welcome: Frame, timeout: float):
        self.name = name
        self.timeout = timeout
        self.welcome = welcome
        self.instance: str = welcome["instance"]
        self.limits: dict[str, Any] = welcome["limits"]
        self.frames: list[Frame] = []
        self.bad_frames: list[str] = []  # server frames that were not JSON objects with a type
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._conn = conn
        self._pacer = Pacer(float(self.limits["rate_per_s"]), int(self.limits["burst"]))
        self._changed = asyncio.Event()
        self._said = 0
        # Sent with every join (docs/protocol.md, "Exactly once"): a user that reconnects
        # passes its token on, so its retried says are recognised as the same say.
        self.client_token = secrets.token_urlsafe(16)
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls, target: Target, name: str, origin: str | None = SAME_ORIGIN
    ) -> ChatClient:
        """Open a websocket as a browser on the target's page would (``origin=None``: no header)."""
        headers = {}
        if origin is not None:
            headers["Origin"] = target.origin if origin == SAME_ORIGIN else origin
        request = HTTPRequest(
            target.ws_url,
            headers=headers,
            connect_timeout=target.timeout,
            request_timeout=target.timeout,
        )
        try:
            conn = await asyncio.wait_for(websocket_connect(request), target.timeout)
        except HTTPClientError as exc:
            raise FlowFailed(
                f"{name}: websocket handshake at {target.ws_url} refused with HTTP {exc.code}"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise FlowFailed(f"{name}: cannot open {target.ws_url}: {exc or 'timeout'}") from None
        try:
            raw = await asyncio.wait_for(conn.read_message(), target.timeout)
        except TimeoutError:
            conn.close()
            raise FlowFailed(f"{name}: no welcome frame within {target.timeout}s") from None
        if raw is None:
            raise FlowFailed(f"{name}: closed before the welcome frame (code {conn.close_code})")
        try:
            welcome = check_welcome(json.loads(raw))
        except (ValueError, FlowFailed) as exc:
            conn.close()
            raise FlowFailed(f"{name}: {exc}") from None
        # No Nagle delay on our side either: flows measure nothing, but waits stay short.
        if conn.stream is not None:
            conn.stream.set_nodelay(True)
        return cls(name, conn, welcome, target.timeout)

    async def _read(self) -> None:
        while True:
            raw = await self._conn.read_message()
            if raw is None:
                self.closed = True
                self.close_code = self._conn.close_code
                self.close_reason = self._conn.close_reason
                self._notify()
                return
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and isinstance(frame.get("type"), str):
                self.frames.append(frame)
            else:
                self.bad_frames.append(raw if isinstance(raw, str) else repr(raw))
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- sending --------------------------------------------------------------------------

    async def send_raw(self, data: str | bytes, *, paced: bool = True) -> None:
        if self.closed:
            raise FlowFailed(
                f"{self.name}: cannot send, connection closed (code {self.close_code})"
            )
        if paced:
            await self._pacer.take()
        try:
            await self._conn.write_message(data, binary=isinstance(data, bytes))
        except Exception as exc:  # tornado raises WebSocketClosedError or StreamClosedError
            raise FlowFailed(f"{self.name}: send failed: {type(exc).__name__}") from None

    async def send(self, frame: Frame, *, paced: bool = True) -> None:
        await self.send_raw(json.dumps(frame, ensure_ascii=False), paced=paced)

    def mark(self) -> int:
        """Index of the next frame: pass it as ``since`` to wait for frames sent after now."""
        return len(self.frames)

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(
        self,
        matches: Callable[[Frame], bool],
        what: str,
        *,
        since: int = 0,
        fail_on_error: bool = True,
        timeout: float | None = None,
    ) -> Frame:
        """The first frame from index ``since`` on that ``matches``, waiting for it.

        With ``fail_on_error`` an error frame seen first fails the flow with its code.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        index = since
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if matches(frame):
                    return frame
                if fail_on_error and frame["type"] == "error":
                    raise FlowFailed(
                        f"{self.name}: {what}: got error code={frame.get('code')!r} "
                        f"detail={frame.get('detail')!r}"
                    )
            if self.closed:
                raise FlowFailed(f"{self.name}: {what}: connection closed (code {self.close_code})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FlowFailed(f"{self.name}: {what}: nothing within {self.timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def expect_error(self, code: str, since: int) -> Frame:
        """The next frame after ``since`` must be an error frame with ``code``."""
        frame = await self.wait_for(
            lambda f: f["type"] == "error", f"error {code}", since=since, fail_on_error=False
        )
        if frame.get("code") != code:
            raise FlowFailed(
                f"{self.name}: expected error code={code!r}, got code={frame.get('code')!r} "
                f"detail={frame.get('detail')!r}"
            )
        if not isinstance(frame.get("detail"), str):
            raise FlowFailed(f"{self.name}: error frame without a string detail: {frame!r}")
        return frame

    async def wait_closed(self, timeout: float | None = None) -> int | None:
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout or self.timeout)
        except TimeoutError:
            raise FlowFailed(f"{self.name}: still open after {timeout or self.timeout}s") from None
        return self.close_code

    # -- chat operations ------------------------------------------------------------------

    async def join(self, room: str, nick: str, client_token: str | None = None) -> None:
        """Join and wait for our own presence frame (that is how a client knows it is in).

        ``client_token``: the user's secret across connections (default: this client's)."""
        since = self.mark()
        token = client_token or self.client_token
        await self.send({"type": "join", "room": room, "nick": nick, "client_token": token})
        await self.wait_for(
            presence_of(room, nick, "join"), f"own presence joining {room}", since=since
        )

    async def leave(self, room: str) -> None:
        await self.send({"type": "leave", "room": room})

    def new_client_msg_id(self) -> str:
        self._said += 1
        return f"{self.name}-{unique_token()}-{self._said}"

    async def say(self, room: str, text: str, client_msg_id: str | None = None) -> str:
        """Say ``text`` and return the id from its ``ack``.

        ``unavailable`` is answered as docs/protocol.md asks: pause, then resend with the
        same client_msg_id, until the wait timeout runs out.
        """
        cmid = client_msg_id or self.new_client_msg_id()
        deadline = time.monotonic() + self.timeout
        while True:
            since = self.mark()
            await self.send({"type": "say", "room": room, "text": text, "client_msg_id": cmid})
            frame = await self.wait_for(
                lambda f: (
                    f["type"] == "error" or (f["type"] == "ack" and f.get("client_msg_id") == cmid)
                ),
                f"ack of {cmid}",
                since=since,
                fail_on_error=False,
            )
            if frame["type"] == "ack":
                message_id = frame.get("id")
                if not isinstance(message_id, str) or not message_id:
                    raise FlowFailed(f"{self.name}: ack without an id: {frame!r}")
                return message_id
            if frame.get("code") != "unavailable" or time.monotonic() > deadline:
                raise FlowFailed(
                    f"{self.name}: say {cmid}: got error code={frame.get('code')!r} "
                    f"detail={frame.get('detail')!r}"
                )
            await asyncio.sleep(UNAVAILABLE_RETRY_S)

    def messages(self, room: str) -> list[Frame]:
        return [f for f in self.frames if f["type"] == "message" and f.get("room") == room]

    def errors(self) -> list[Frame]:
        return [f for f in self.frames if f["type"] == "error"]

    async def wait_message(self, room: str, message_id: str) -> Frame:
        return await self.wait_for(
            lambda f: (
                f["type"] == "message" and f.get("room") == room and f.get("id") == message_id
            ),
            f"message {message_id}",
        )

    def check_healthy(self) -> None:
        """Still open, and every server frame was a JSON object with a type."""
        if self.closed:
            raise FlowFailed(
                f"{self.name}: connection closed unexpectedly (code {self.close_code})"
            )
        if self.bad_frames:
            raise FlowFailed(f"{self.name}: server sent a non-frame: {self.bad_frames[0][:200]!r}")

    async def close(self) -> None:
        if not self.closed:
            self._conn.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), self.timeout)
        except TimeoutError:
            self._reader.cancel()


class Clients:
    """Opens clients and closes every one of them when the flow ends, passed or failed."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.all: list[ChatClient] = []

    async def connect(self, name: str, origin: str | None = SAME_ORIGIN) -> ChatClient:
        client = await ChatClient.connect(self.target, name, origin)
        self.all.append(client)
        return client

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(c.close() for c in self.all), return_exceptions=True)
