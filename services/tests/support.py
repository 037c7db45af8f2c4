"""Test harness: real tornado servers on free loopback ports and websocket clients.

Tests are plain functions that run a scenario with ``run(coro)``; servers and clients are
real (sockets, tornado, the in-memory broker or a real RabbitMQ), only time limits differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from chatstack.config import Config, load_config
from chatstack.httpserver import GuardedHTTPServer
from chatstack.probe.http import page_fetcher
from chatstack.probe.recovery import FetchPage
from chatstack.probe.target import Target

TIMEOUT = 5.0
HEADER_TIMEOUT_S = 30.0


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def make_config(role: str = "serve", tmp: Path | None = None, **env: str) -> Config:
    """A config from CHATSTACK_* style overrides: make_config(limits__burst="3")."""
    environ = {f"CHATSTACK_{k.upper()}": str(v) for k, v in env.items()}
    if tmp is not None and "CHATSTACK_HISTORY__DATABASE" not in environ:
        environ["CHATSTACK_HISTORY__DATABASE"] = str(tmp / "history.sqlite3")
    return load_config(role, None, environ)


@dataclass
class Served:
    port: int
    server: tornado.httpserver.HTTPServer

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@contextlib.asynccontextmanager
async def serving(app: tornado.web.Application) -> AsyncIterator[Served]:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    # The services' own server class (its streams, its connection count), not tornado's.
    server = GuardedHTTPServer(
        app, xheaders=False, max_connections=10_000, header_timeout_s=HEADER_TIMEOUT_S
    )
    server.add_sockets(sockets)
    try:
        yield Served(sockets[0].getsockname()[1], server)
    finally:
        server.stop()
        await server.close_all_connections()


def nick_token(nick: str) -> str:
    """A client_token for tests: stable per nick, matching protocol.client_token_pattern."""
    return ("tok_" + nick.replace(".", "_")).ljust(22, "x")


@dataclass
class Client:
    """A websocket client: ``frames`` is everything received, ``expect`` consumes matches."""

    conn: tornado.websocket.WebSocketClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    welcome: dict[str, Any] = field(default_factory=dict)
    close_code: int | None = None

    @classmethod
    async def connect(cls, url: str, origin: str | None = None) -> Client:
        headers = {"Origin": origin} if origin else {}
        conn = await tornado.websocket.websocket_connect(
            HTTPRequest(url, headers=headers, connect_timeout=TIMEOUT)
        )
        client = cls(conn)
        client.welcome = await client.expect("welcome")
        return client

    async def send(self, **frame: Any) -> None:
        await self.conn.write_message(json.dumps(frame))

    async def send_raw(self, raw: str | bytes) -> None:
        await self.conn.write_message(raw, binary=isinstance(raw, bytes))

    async def read(self, timeout: float = TIMEOUT) -> dict[str, Any] | None:
        """The next frame off the socket, or None when it closed."""
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            self.close_code = self.conn.close_code
            return None
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        self.unmatched.append(frame)
        return frame

    async def first(
        self, match: Callable[[dict[str, Any]], bool], what: str, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The first received frame (old or new) that ``match``es, consumed."""
        deadline = asyncio.get_running_loop().time() + timeout
        checked = 0
        while True:
            for index in range(checked, len(self.unmatched)):
                if match(self.unmatched[index]):
                    return self.unmatched.pop(index)
            checked = len(self.unmatched)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; got {self.frames}")
            try:
                frame = await self.read(remaining)
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout}s; got {self.frames}") from None
            if frame is None:
                raise AssertionError(f"closed ({self.close_code}) while waiting for {what}")

    async def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        return await self.first(
            lambda f: f["type"] == kind and all(f.get(k) == v for k, v in fields.items()),
            f"{kind} {fields}",
            timeout,
        )

    async def join(self, room: str, nick: str, token: str | None = "") -> None:
        """Join with ``token`` as client_token; by default one derived from the nick, so
        the same "user" reconnecting is recognised (retries dedupe); None sends none."""
        frame: dict[str, Any] = {"type": "join", "room": room, "nick": nick}
        if token is not None:
            frame["client_token"] = token or nick_token(nick)
        await self.send(**frame)
        await self.expect("presence", room=room, nick=nick, event="join")

    async def join_when_free(self, room: str, nick: str, token: str | None = "") -> None:
        """Join, retrying while ``nick`` is still held (nick_taken): a nick another gateway
        gave up is free here once that gateway's member announcement arrived."""
        frame: dict[str, Any] = {"type": "join", "room": room, "nick": nick}
        if token is not None:
            frame["client_token"] = token or nick_token(nick)
        for _ in range(100):
            await self.send(**frame)
            got = await self.first(
                lambda f: (
                    f["type"] == "error"
                    or (f["type"] == "presence" and f["nick"] == nick and f["room"] == room)
                ),
                f"join {room} as {nick}",
            )
            if got["type"] == "presence":
                return
            assert got["code"] == "nick_taken", got
            await asyncio.sleep(0.1)
        raise AssertionError(f"{nick} stayed taken in {room}")

    async def say(self, room: str, text: str, cmid: str) -> dict[str, Any]:
        """Say and wait for the ack; an error frame fails the test."""
        await self.send(type="say", room=room, text=text, client_msg_id=cmid)
        frame = await self.first(
            lambda f: (f["type"] == "ack" and f["client_msg_id"] == cmid) or f["type"] == "error",
            f"ack {cmid}",
        )
        assert frame["type"] == "ack", f"say {cmid} refused: {frame}"
        return frame

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        while True:
            frame = await self.read(timeout)
            if frame is None:
                return self.close_code

    def messages(self, room: str | None = None) -> list[dict[str, Any]]:
        return [
            f for f in self.frames if f["type"] == "message" and (room is None or f["room"] == room)
        ]

    def close(self) -> None:
        self.conn.close()


async def get(url: str, **headers: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(
        HTTPRequest(url, headers=headers or None), raise_error=False
    )


async def get_json(url: str) -> Any:
    response = await get(url)
    assert response.code == 200, (url, response.code, response.body)
    return json.loads(response.body)


async def eventually(check: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(step)


@dataclass
class Embedded:
    served: Served
    gateway: Any
    history: Any
    hub: Any


def recording_metrics() -> Any:
    """Metrics that check names against the contract (as the real ones do) and count them."""
    from collections import Counter

    from chatstack.metrics import Metrics

    class Recording(Metrics):
        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter[str] = Counter()

        def incr(self, template: str, count: int = 1, **fields: Any) -> None:
            super().incr(template, count, **fields)
            self.counts[template.format(**fields) if fields else template] += count

    return Recording()


@contextlib.asynccontextmanager
async def embedded(
    tmp: Path, clock: Callable[[], float] | None = None, metrics: Any = None, **env: str
) -> AsyncIterator[Embedded]:
    """The embedded default (gateway + history + in-memory broker) on a free port."""
    import time

    from chatstack.broker.memory import MemoryHub
    from chatstack.gateway.core import Gateway
    from chatstack.history.service import HistoryService
    from chatstack.history.store import HistoryStore
    from chatstack.metrics import Metrics
    from chatstack.web.app import make_embedded_app

    config = make_config("serve", tmp, **env)
    metrics = metrics or Metrics()
    hub = MemoryHub()
    gateway = Gateway(config, hub.gateway(), metrics, clock or time.time)
    history = HistoryService(HistoryStore(config.history_database), hub.history(), metrics)
    await history.start()
    await gateway.start()
    try:
        async with serving(make_embedded_app(config, gateway, history, metrics)) as served:
            yield Embedded(served, gateway, history, hub)
    finally:
        await gateway.drain(1.0)
        await history.close()


@dataclass
class Cluster:
    gateways: list[Any]
    gateway_served: list[Served]
    history: Any
    history_served: Served


@contextlib.asynccontextmanager
async def cluster(
    tmp: Path,
    gateway_brokers: list[Any],
    history_broker: Any,
    clocks: list[Callable[[], float]] | None = None,
    **env: str,
) -> AsyncIterator[Cluster]:
    """Production topology in one process: gateways and history on their own ports,
    talking only through the given brokers (in-memory endpoints or RabbitMQ)."""
    import time

    from chatstack.gateway.core import Gateway
    from chatstack.history.service import HistoryService
    from chatstack.history.store import HistoryStore
    from chatstack.metrics import Metrics
    from chatstack.web.app import make_gateway_app, make_history_app

    metrics = Metrics()
    clocks = clocks or [time.time] * len(gateway_brokers)
    gateways = []
    for index, (broker, clock) in enumerate(zip(gateway_brokers, clocks, strict=True)):
        config = make_config("serve", tmp, instance=f"gw-{index + 1}", **env)
        gateways.append(Gateway(config, broker, metrics, clock))
    history_config = make_config("serve", tmp, instance="history", **env)
    history = HistoryService(HistoryStore(history_config.history_database), history_broker, metrics)
    await history.start()
    for gateway in gateways:
        await gateway.start()
    async with contextlib.AsyncExitStack() as stack:
        served = [
            await stack.enter_async_context(serving(make_gateway_app(g.config, g)))
            for g in gateways
        ]
        history_served = await stack.enter_async_context(
            serving(make_history_app(history_config, history, metrics))
        )
        try:
            yield Cluster(gateways, served, history, history_served)
        finally:
            for gateway in gateways:
                await gateway.drain(1.0)
            await history.close()


def history_pages(base_url: str, room: str) -> FetchPage:
    """fetch_page(after, limit) for chatstack.probe.recovery against a history URL: the
    probe's own, which also checks the shape of every answer."""
    return page_fetcher(Target(base_url=base_url, origin=base_url, timeout=10.0), room)
