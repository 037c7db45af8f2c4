"""A blocking websocket client on a plain socket, for clients tornado's own client will not
be: one that never reads, floods control frames, or answers a close late.

Blocking: call it from a thread (``asyncio.to_thread``) when the server runs in the test's
own event loop.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class RawWebSocket:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        path: str = "/ws",
        *,
        recv_buffer: int | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if recv_buffer is not None:
            # Before connect, so the advertised window stays small: the server's unsent
            # output then piles up on the server, not in this kernel.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        sock.settimeout(timeout)
        sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws = cls(sock)
        head = ws._read_until(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            sock.close()
            raise ConnectionRefusedError(status.decode(errors="replace"))
        return ws

    # --- sending -------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_json(self, **frame: Any) -> None:
        self.send_frame(TEXT, json.dumps(frame).encode())

    def send_close(self, code: int = 1000) -> None:
        self.send_frame(CLOSE, struct.pack("!H", code))

    # --- receiving -----------------------------------------------------------------------

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def recv_frame(self) -> tuple[int, bytes]:
        first, second = self._read_exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        return first & 0x0F, self._read_exactly(length)

    def recv_json(self) -> dict[str, Any]:
        while True:
            opcode, payload = self.recv_frame()
            if opcode == TEXT:
                frame: dict[str, Any] = json.loads(payload)
                return frame
            if opcode == CLOSE:
                raise ConnectionError(f"close frame {close_code(payload)}")

    def read_until_close(self) -> tuple[int | None, list[dict[str, Any]], int]:
        """Everything up to the server's close frame: (close code, text frames, pongs)."""
        frames: list[dict[str, Any]] = []
        pongs = 0
        while True:
            opcode, payload = self.recv_frame()
            if opcode == TEXT:
                frames.append(json.loads(payload))
            elif opcode == PONG:
                pongs += 1
            elif opcode == CLOSE:
                return close_code(payload), frames, pongs

    def close(self) -> None:
        self.sock.close()


def close_code(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
