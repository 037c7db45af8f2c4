"""tornado glue: the /ws handler that feeds a Session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import tornado.websocket
from tornado.iostream import StreamClosedError

from .core import Gateway, protocol_close_code
from .session import Session

log = logging.getLogger(__name__)

_TEXT_OPCODE = 0x1


class ChatSocketHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.session: Session | None = None

    def check_origin(self, origin: str) -> bool:
        allowed = self.gateway.origin_allowed(origin)
        if not allowed:
            log.info(
                "refused origin %s",
                origin,
                extra={"event": "ws.origin_refused", "origin": origin[:200]},
            )
        return allowed

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # Not connected to the broker: refuse the handshake with 503, so nginx passes it on
        # to another gateway (proxy_next_upstream http_503) instead of a socket here that
        # could only answer `unavailable`.
        if not self.gateway.broker.ready:
            self.set_status(503)
            self.set_header("Cache-Control", "no-store")
            self.finish({"error": {"code": "unavailable", "detail": "not connected to the broker"}})
            return
        await super().get(*args, **kwargs)

    def get_compression_options(self) -> dict[str, Any] | None:
        # permessage-deflate costs an order of magnitude more memory per connection.
        return None

    def open(self, *args: str, **kwargs: str) -> None:
        if self.gateway.draining:
            self.close(protocol_close_code("close_service_restart"), "server restarting")
            return
        # Without this every small frame waits for Nagle's algorithm (~40 ms per exchange).
        self.set_nodelay(True)
        self.session = Session(self.gateway, self)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if self.session is not None:
            self.session.handle(message)
        # tornado awaits this before reading the next frame: one busy socket cannot
        # hold the loop for a whole buffer of frames while others wait.
        return asyncio.sleep(0)

    def on_close(self) -> None:
        if self.session is not None:
            self.session.disconnected()

    # --- Transport for the session ---------------------------------------------------------

    def send_text(self, text: str) -> None:
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        try:
            # write_message() wraps every write in a new asyncio Task; fan-out to a big room
            # would create one per member. The frame writer underneath returns the stream's
            # own future (tornado silences its errors on close), so no task is created.
            connection._write_frame(True, _TEXT_OPCODE, text.encode("utf-8"))  # type: ignore[attr-defined]
        except StreamClosedError:
            pass
