"""Websocket frames as bytes on the wire, built once per server frame.

A server frame is the same bytes for every member (server-to-client frames are not masked,
and permessage-deflate is off), so a message fanned out to a room is encoded and framed
once and the same ``bytes`` object is queued on every member's socket.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
# A final ping frame with no payload.
PING = b"\x89\x00"


def text_frame(text: str) -> bytes:
    """One final, unmasked websocket text frame carrying ``text`` (RFC 6455, 5.2)."""
    payload = text.encode("utf-8")
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", _FIN_TEXT, length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        head = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return head + payload
