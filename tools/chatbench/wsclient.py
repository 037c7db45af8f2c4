"""A minimal websocket client on an asyncio Protocol: the load generator's side of a socket.

tornado's client costs a task and a JSON decode per frame; at tens of thousands of frames
per second that would make the load generator, not the server, the bottleneck. This one
parses frames in ``data_received`` and hands each text payload (bytes) to a callback.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Callable

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
_MASK = b"\0\0\0\0"  # RFC 6455 requires a mask; a zero mask leaves the payload as is


def encode_frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + _MASK + payload


class WsProtocol(asyncio.Protocol):
    def __init__(self, host: str, path: str, on_text: Callable[[bytes], None]) -> None:
        self.host = host
        self.path = path
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._buffer = b""
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if not self._upgraded:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                self._buffer = buffer
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                if not self.opened.done():
                    self.opened.set_exception(
                        ConnectionRefusedError(head[:200].decode())
                    )
                assert self.transport is not None
                self.transport.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
            buffer = rest
        pos, end = 0, len(buffer)
        on_text = self.on_text
        while end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length, start = second & 0x7F, pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length, start = struct.unpack_from("!H", buffer, pos + 2)[0], pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, start = struct.unpack_from("!Q", buffer, pos + 2)[0], pos + 10
            if end - start < length:
                break
            payload = buffer[start : start + length]
            pos = start + length
            opcode = first & 0x0F
            if opcode == TEXT:
                on_text(payload)
            elif opcode == PING:
                self.send(PONG, payload)
            elif opcode == CLOSE:
                code = (
                    struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                )
                if not self.closed.done():
                    self.closed.set_result(code)
                assert self.transport is not None
                self.transport.close()
                return
        self._buffer = buffer[pos:]

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    def send_text(self, payload: bytes) -> None:
        self.send(TEXT, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                ConnectionError(f"closed during the handshake: {exc}")
            )
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(
    host: str,
    port: int,
    on_text: Callable[[bytes], None],
    *,
    path: str = "/ws",
    source: str | None = None,
    timeout: float = 15.0,
    made: Callable[[WsProtocol], None] | None = None,
) -> WsProtocol:
    """Open a websocket from ``source`` (a loopback address: 127.0.0.0/8 is all local, so
    spreading clients over many addresses stays under per-address limits)."""
    loop = asyncio.get_running_loop()

    def factory() -> WsProtocol:
        return _made(WsProtocol(f"{host}:{port}", path, on_text), made)

    async def opening() -> tuple[asyncio.BaseTransport, WsProtocol]:
        if source is None:
            return await loop.create_connection(factory, host, port)
        sock = await _connected(source, host, port)
        return await loop.create_connection(factory, sock=sock)

    _, protocol = await asyncio.wait_for(opening(), timeout)
    await asyncio.wait_for(protocol.opened, timeout)
    return protocol


async def _connected(source: str, host: str, port: int) -> socket.socket:
    """A TCP socket from ``source`` connected to host:port. Its port is chosen by connect(),
    not bind() (IP_BIND_ADDRESS_NO_PORT): a port taken by bind() is closed to every
    connect() on the machine, so tens of thousands of clients bound that way leave nginx
    too few source ports to reach the gateways (EADDRNOTAVAIL at ~14k per gateway)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
        sock.setblocking(False)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _made(
    protocol: WsProtocol, made: Callable[[WsProtocol], None] | None
) -> WsProtocol:
    # Before any data arrives: a server may speak first in the handshake's own packet.
    if made is not None:
        made(protocol)
    return protocol
