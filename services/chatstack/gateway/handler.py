"""tornado glue: the /ws handler that feeds a Session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Awaitable
from typing import Any

import tornado.httputil
import tornado.websocket
from tornado.iostream import StreamClosedError

from .. import contract
from . import wire
from .core import Gateway, protocol_close_code
from .session import Session

log = logging.getLogger(__name__)


class ChatSocketHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.session: Session | None = None
        self.address = ""
        # Stream write offsets at which frames end, while the client is behind (flush_frames).
        # (None until first behind: an empty deque costs ~760 bytes per idle connection.)
        self._frame_ends: deque[int] | None = None
        # Frames queued in this loop turn (see send_frame).
        self._pending: list[bytes] = []

    async def get(self, *args: str, **kwargs: str) -> None:
        # Not connected to the broker: refuse the handshake with 503, so nginx passes it on
        # to another gateway (proxy_next_upstream http_503) instead of a socket here that
        # could only answer `unavailable`.
        if not self.gateway.broker.ready:
            self.set_status(503)
            self.set_header("Cache-Control", "no-store")
            self.finish({"error": {"code": "unavailable", "detail": "not connected to the broker"}})
            return
        # The client address (X-Real-IP from nginx with http.xheaders): one address may not
        # hold every connection of this gateway.
        self.address = self.request.remote_ip or ""
        if not self.gateway.admits(self.address):
            self.gateway.metrics.incr("gateway.refused.per_address")
            log.info(
                "refused websocket: %s holds too many",
                self.address,
                extra={"event": "ws.per_address_refused"},
            )
            self.set_status(int(contract.section("proxy")["per_address_status"]))
            self.finish({"error": {"code": "too_many_connections", "detail": "per address"}})
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        allowed = self.gateway.origin_allowed(origin)
        if not allowed:
            log.info(
                "refused origin %s",
                origin,
                extra={"event": "ws.origin_refused", "origin": origin[:200]},
            )
        return allowed

    def get_compression_options(self) -> dict[str, Any] | None:
        # permessage-deflate costs an order of magnitude more memory per connection.
        return None

    def open(self, *args: str, **kwargs: str) -> None:
        self.gateway.socket_opened(self, self.address)
        if self.gateway.draining:
            self.close(protocol_close_code("close_service_restart"), "server restarting")
            return
        # Without this every small frame waits for Nagle's algorithm (~40 ms per exchange).
        self.set_nodelay(True)
        self._limit_kernel_buffer()
        self._release_handshake()
        self.session = Session(self.gateway, self)
        self.gateway.keepalive.add(self)

    def _release_handshake(self) -> None:
        # A websocket outlives its handshake by hours, and this handler by then still held
        # what only the handshake used (tracemalloc, per connection): the request's headers
        # (~3 KB from a browser through nginx; tornado's get() keeps the object itself
        # until the socket closes, so it is emptied), the 101 response's headers, the
        # template namespace, and through the request the HTTP/1 connection objects that
        # tornado has already detached the stream from. The request keeps what log lines
        # use (method, uri, remote_ip); nothing reads headers after the handshake.
        headers = self.request.headers
        for name in list(headers):
            del headers[name]
        self._headers = tornado.httputil.HTTPHeaders()
        # What tornado's _break_cycles does at close (no templates are rendered here).
        self.ui = None  # type: ignore[assignment]
        self.request.connection = None
        self.request.server_connection = None
        # The output transforms (security headers) only applied to the 101 response.
        self._transforms = []

    def _limit_kernel_buffer(self) -> None:
        # A fixed SO_SNDBUF turns off autotuning: what a client does not read then piles up
        # where limits.max_unsent_* see and bound it, not megabytes deep in the kernel.
        size = self.gateway.limits.send_buffer_bytes
        stream = self.ws_connection.stream if self.ws_connection is not None else None
        if size and stream is not None and stream.socket is not None:
            with contextlib.suppress(OSError):
                stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if self.session is not None:
            self.session.handle(message)
        # tornado awaits this before reading the next frame: one busy socket cannot
        # hold the loop for a whole buffer of frames while others wait.
        return asyncio.sleep(0)

    def on_ping(self, data: bytes) -> None:
        if self.session is not None:
            self.session.control_frame()

    def on_pong(self, data: bytes) -> None:
        self.gateway.keepalive.answered(self)
        if self.session is not None:
            self.session.control_frame()

    def on_close(self) -> None:
        self.gateway.keepalive.discard(self)
        self.gateway.socket_closed(self, self.address)
        if self.session is not None:
            self.session.disconnected()
            # The session refers back to this handler: without the cycle a closed
            # connection is freed when tornado lets go of it, not by a full collection
            # (gcpolicy freezes long-lived objects, so that would wait for its release).
            self.session = None

    # --- Keepalive (gateway.keepalive pings every socket) -----------------------------------

    def keepalive_ping(self) -> None:
        # Queued like any frame, so the slow-reader bound counts it too.
        self.send_frame(wire.PING)

    def keepalive_timeout(self) -> None:
        log.debug("ping timed out", extra={"event": "ws.ping_timeout"})
        self.close(1000, "ping timed out")  # what tornado's own ping timeout sends

    # --- Transport for the session ---------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        """Queue ``frame``; everything queued in one loop turn goes out in one write.

        One write (one syscall) per frame per socket was the gateway's largest cost: a
        broker read brings several messages, and each member would get each separately.
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        if not self._pending:
            self.gateway.write_soon(self)
        self._pending.append(frame)

    def flush_frames(self) -> None:
        """Write what ``send_frame`` queued (called once per loop turn by the gateway)."""
        frames, self._pending = self._pending, []
        connection = self.ws_connection
        if not frames or connection is None or connection.is_closing():
            return
        stream = connection.stream
        if stream is None:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        start = stream._total_write_index
        try:
            # write_message() would wrap every write in a new asyncio Task and frame the text
            # again for every member; the frames are built once per room (wire.text_frame).
            stream.write(data)
        except StreamClosedError:
            return
        connection._wire_bytes_out += len(data)  # type: ignore[attr-defined]
        # What the kernel did not take stays in tornado's buffer: bound it. The counters are
        # tornado's (IOStream), read rather than adding a callback to every write.
        done = stream._total_write_done_index
        unsent = stream._total_write_index - done
        if not unsent:
            self._frame_ends = None
            return
        if self._frame_ends is None:
            self._frame_ends = deque()
        ends = self._frame_ends
        end = start
        for frame in frames:
            end += len(frame)
            ends.append(end)
        while ends and ends[0] <= done:
            ends.popleft()
        limits = self.gateway.limits
        if (unsent > limits.max_unsent_bytes or len(ends) > limits.max_unsent_frames) and (
            self.session is not None
        ):
            self.session.too_slow(unsent, len(ends))
            self.gateway.reap(self)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # The close frame must follow what was queued before it, not overtake it.
        self.flush_frames()
        super().close(code, reason)

    def abort_if_behind(self) -> None:
        """Drop the TCP connection now if output is still queued on it; a client that has
        read everything meanwhile finishes the close handshake (bounded by tornado)."""
        connection = self.ws_connection
        stream = connection.stream if connection is not None else None
        if stream is not None and stream._total_write_index > stream._total_write_done_index:
            stream.close()
