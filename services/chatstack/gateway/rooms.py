"""Which local sessions are in which room; the broker is bound to exactly those rooms."""

from __future__ import annotations

from typing import Protocol

from ..broker.base import GatewayBroker
from . import wire


class Member(Protocol):
    def send_frame(self, frame: bytes) -> None: ...


class Rooms:
    def __init__(self, broker: GatewayBroker) -> None:
        self._broker = broker
        self._members: dict[str, dict[Member, None]] = {}  # insertion-ordered set

    def add(self, room: str, member: Member) -> bool:
        """Add ``member``; returns whether ``room`` had no member here before."""
        members = self._members.get(room)
        first = members is None
        if members is None:
            members = self._members[room] = {}
            self._broker.bind(room)
        members[member] = None
        return first

    def remove(self, room: str, member: Member) -> None:
        members = self._members.get(room)
        if members is None:
            return
        members.pop(member, None)
        if not members:
            del self._members[room]
            self._broker.unbind(room)

    def members(self, room: str) -> list[Member]:
        return list(self._members.get(room, ()))

    def names(self) -> list[str]:
        """The rooms with a member here."""
        return list(self._members)

    def fan_out(self, room: str, text: str) -> int:
        """Write one serialized frame to every local member; returns how many."""
        members = self._members.get(room)
        if not members:
            return 0
        frame = wire.text_frame(text)  # once for the whole room
        # A copy: a failed write may remove its member from this very dict.
        for member in list(members):
            member.send_frame(frame)
        return len(members)
