"""Plain HTTP requests of the probe: the history API, header checks and bare websocket
handshakes.

Non-2xx answers are returned, not raised: several flows check status codes and headers
of refusals on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders
from tornado.websocket import websocket_connect

from .recovery import FetchPage, Message, Page
from .report import FlowFailed
from .target import Target

MESSAGE_FIELDS = ("id", "room", "nick", "text", "ts")


@dataclass
class Answer:
    code: int
    headers: HTTPHeaders
    body: bytes


async def request(
    target: Target, url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Answer:
    req = HTTPRequest(
        url,
        method=method,
        headers=headers or {},
        connect_timeout=target.timeout,
        request_timeout=target.timeout,
        follow_redirects=False,
        # Lets OPTIONS and a body-less POST through (checks of refusals send no body).
        allow_nonstandard_methods=True,
    )
    try:
        response = await AsyncHTTPClient().fetch(req, raise_error=False)
    except HTTPClientError as exc:  # raised even so for e.g. a timeout (code 599)
        raise FlowFailed(f"{method} {url}: {exc}") from None
    except OSError as exc:
        raise FlowFailed(f"{method} {url}: {exc}") from None
    if response.code == 599:
        raise FlowFailed(f"{method} {url}: {response.error}")
    return Answer(response.code, response.headers, response.body or b"")


async def handshake(target: Target, origin: str) -> Answer:
    """A websocket handshake on /ws with ``origin``, closed at once when accepted: code 101
    and the upgrade's headers, or the HTTP refusal as it came."""
    what = f"websocket handshake with Origin {origin}"
    req = HTTPRequest(
        target.ws_url,
        headers={"Origin": origin},
        connect_timeout=target.timeout,
        request_timeout=target.timeout,
    )
    try:
        conn = await websocket_connect(req)
    except HTTPClientError as exc:
        if exc.response is None:  # no answer at all (timeout, reset)
            raise FlowFailed(f"{what}: {exc}") from None
        return Answer(exc.code, exc.response.headers, exc.response.body or b"")
    except OSError as exc:
        raise FlowFailed(f"{what}: {exc}") from None
    conn.close()
    return Answer(101, conn.headers or HTTPHeaders(), b"")


def _json(answer: Answer, what: str) -> Any:
    try:
        return json.loads(answer.body)
    except ValueError:
        raise FlowFailed(
            f"{what}: HTTP {answer.code} body is not JSON: {answer.body[:200]!r}"
        ) from None


async def history_page(target: Target, room: str, after: str | None, limit: int) -> Page:
    """One page of GET /api/rooms/{room}/messages, shape checked against docs/protocol.md."""
    query: dict[str, str | int] = {"limit": limit}
    if after is not None:
        query["after"] = after
    url = target.messages_url(room, query)
    answer = await request(target, url)
    what = f"GET {url}"
    if answer.code != 200:
        raise FlowFailed(f"{what}: expected HTTP 200, got {answer.code} {answer.body[:200]!r}")
    body = _json(answer, what)
    if (
        not isinstance(body, dict)
        or body.get("room") != room
        or not isinstance(body.get("messages"), list)
        or not isinstance(body.get("live"), bool)
    ):
        raise FlowFailed(
            f"{what}: expected {{'room': {room!r}, 'messages': [...], 'live': true|false}}, "
            f"got {body!r:.300}"
        )
    for message in body["messages"]:
        if not isinstance(message, dict) or any(k not in message for k in MESSAGE_FIELDS):
            raise FlowFailed(f"{what}: message without the fields {MESSAGE_FIELDS}: {message!r}")
        if message["room"] != room:
            raise FlowFailed(f"{what}: message of another room: {message!r}")
    messages: list[Message] = body["messages"]
    return Page(messages, body["live"])


def page_fetcher(target: Target, room: str) -> FetchPage:
    async def fetch(after: str | None, limit: int) -> Page:
        return await history_page(target, room, after, limit)

    return fetch
