"""The websocket protocol of docs/protocol.md: parsing client frames, building server frames.

``parse_client_frame`` turns ANY input into a frame object or a ``ProtocolError`` with one of
the documented codes; nothing else escapes it (a property test checks this).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from . import contract


class ProtocolError(Exception):
    """A refused frame: ``code`` is one of contract.toml's protocol.error_codes."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Join:
    room: str
    nick: str
    client_token: str | None = None  # the client's secret; None: this connection only


@dataclass(frozen=True)
class Leave:
    room: str


@dataclass(frozen=True)
class Say:
    room: str
    text: str
    client_msg_id: str


ClientFrame = Join | Leave | Say


@dataclass(frozen=True)
class Rules:
    """Compiled patterns and the text limit a parser checks against."""

    room: re.Pattern[str]
    nick: re.Pattern[str]
    client_msg_id: re.Pattern[str]
    client_token: re.Pattern[str]
    max_text_bytes: int

    @classmethod
    def from_contract(cls, max_text_bytes: int) -> Rules:
        protocol = contract.section("protocol")
        return cls(
            room=re.compile(protocol["room_pattern"]),
            nick=re.compile(protocol["nick_pattern"]),
            client_msg_id=re.compile(protocol["client_msg_id_pattern"]),
            client_token=re.compile(protocol["client_token_pattern"]),
            max_text_bytes=max_text_bytes,
        )


def _matching(obj: dict[str, Any], field: str, pattern: re.Pattern[str], code: str) -> str:
    value = obj.get(field)
    # fullmatch: "$" in the patterns would also accept a trailing newline.
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProtocolError(code, f"'{field}' must match {pattern.pattern}")
    return value


def parse_client_frame(raw: str | bytes, rules: Rules) -> ClientFrame:
    if isinstance(raw, bytes):
        raise ProtocolError("bad_json", "binary frames are not supported; send JSON text")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError("bad_frame", "a frame is a JSON object with a string 'type'")
    kind = obj["type"]
    if kind == "join":
        room = _matching(obj, "room", rules.room, "bad_room")
        nick = _matching(obj, "nick", rules.nick, "bad_nick")
        token = None
        if "client_token" in obj:
            token = _matching(obj, "client_token", rules.client_token, "bad_client_token")
        return Join(room=room, nick=nick, client_token=token)
    if kind == "leave":
        return Leave(room=_matching(obj, "room", rules.room, "bad_room"))
    if kind == "say":
        room = _matching(obj, "room", rules.room, "bad_room")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            raise ProtocolError("bad_text", "'text' must be a non-empty string")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates from \ud800 escapes
            raise ProtocolError("bad_text", "'text' is not valid Unicode") from None
        if size > rules.max_text_bytes:
            raise ProtocolError(
                "text_too_long", f"'text' is {size} bytes, the limit is {rules.max_text_bytes}"
            )
        cmid = _matching(obj, "client_msg_id", rules.client_msg_id, "bad_client_msg_id")
        return Say(room=room, text=text, client_msg_id=cmid)
    raise ProtocolError("unknown_type", "'type' must be join, leave or say")


def encode(frame: dict[str, Any]) -> str:
    """Serialize a server frame (compact; non-ASCII kept as UTF-8)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def welcome(conn: str, instance: str, limits: dict[str, Any]) -> str:
    return encode({"type": "welcome", "conn": conn, "instance": instance, "limits": limits})


def message(room: str, message_id: str, nick: str, text: str, ts: int) -> str:
    return encode(
        {"type": "message", "room": room, "id": message_id, "nick": nick, "text": text, "ts": ts}
    )


def ack(client_msg_id: str, message_id: str) -> str:
    return encode({"type": "ack", "client_msg_id": client_msg_id, "id": message_id})


def presence(room: str, nick: str, event: str) -> str:
    return encode({"type": "presence", "room": room, "nick": nick, "event": event})


def members(room: str, nicks: list[str]) -> str:
    return encode({"type": "members", "room": room, "nicks": nicks})


def error(code: str, detail: str) -> str:
    return encode({"type": "error", "code": code, "detail": detail})
