"""Websocket text frames built once per room: the bytes RFC 6455 prescribes for a final,
unmasked text frame, for each of the three length encodings."""

from __future__ import annotations

import struct

import pytest

from chatstack.gateway.wire import text_frame


def parse(frame: bytes) -> tuple[int, str]:
    first, second = frame[0], frame[1]
    assert second & 0x80 == 0, "server frames are not masked"
    length, offset = second & 0x7F, 2
    if length == 126:
        (length,), offset = struct.unpack_from("!H", frame, 2), 4
    elif length == 127:
        (length,), offset = struct.unpack_from("!Q", frame, 2), 10
    payload = frame[offset:]
    assert len(payload) == length
    return first, payload.decode("utf-8")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_length_encoding_round_trips(size: int) -> None:
    text = "x" * size
    first, decoded = parse(text_frame(text))
    assert first == 0x81  # FIN + text opcode
    assert decoded == text


def test_length_counts_utf8_bytes_not_characters() -> None:
    text = "é" * 100  # 200 bytes: needs the 16-bit length form
    frame = text_frame(text)
    assert frame[1] == 126 and parse(frame)[1] == text
