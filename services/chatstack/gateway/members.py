"""Who is in each room across every gateway, through the broker only (no shared store).

Each gateway announces its own members of a room — ``{nick: [sender, …]}``, a sender being
the hash of a client token (session.sender_of) — on the room's ``members`` routing key when
they change (gathered for gateway.presence_coalesce_ms) and again every lease / 3 as a
lease, spread over that time (``HEARTBEAT_SLICES``). The others keep the latest
announcement of each gateway until its lease runs out, so the members of a gateway that
dies without a word (kill -9) drop out within the lease. A gateway that starts serving a
room publishes a ``who`` request on the room's key, and every gateway with members there
answers with an announcement.

Nothing here runs per chat message: only joins, leaves, the heartbeat and the sweep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import protocol

log = logging.getLogger(__name__)

Holders = dict[str, frozenset[str]]  # nick -> senders holding it

# The heartbeat re-announces each room every lease / 3, a room's turn set by a hash of its
# name, so a gateway with thousands of rooms does not announce them all in one loop turn:
# with 19 900 idle sockets per gateway in 10-member rooms, all ~2000 at once stalled the
# gateway for up to ~0.7 s every 5 s (docs/performance.md).
HEARTBEAT_SLICES = 20
Publish = Callable[[str, str, bytes], None]  # (kind, room, body), fire and forget


@dataclass
class _Lease:
    holders: Holders
    expires: float  # on the receiving gateway's monotonic clock: no clocks are compared


class MemberTable:
    """The other gateways' members of each room, each announcement believed until it
    expires. Pure bookkeeping (no I/O, no clock of its own): the property tests drive it."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, _Lease]] = {}  # room -> gateway -> lease

    def announce(self, room: str, gateway: str, holders: Holders, expires: float) -> bool:
        """Replace ``gateway``'s members of ``room`` (none: it left the room); returns
        whether the room's nicks changed."""
        before = self.nicks(room)
        leases = self._rooms.setdefault(room, {})
        if holders:
            leases[gateway] = _Lease(dict(holders), expires)
        else:
            leases.pop(gateway, None)
        if not leases:
            del self._rooms[room]
        return self.nicks(room) != before

    def seen(
        self, room: str, gateway: str, nick: str, sender: str, joined: bool, expires: float
    ) -> bool:
        """Apply one presence event of ``gateway`` ahead of its next announcement (which
        replaces it); returns whether the room's nicks changed."""
        lease = self._rooms.get(room, {}).get(gateway)
        holders = dict(lease.holders) if lease else {}
        senders = holders.get(nick, frozenset())
        senders = senders | {sender} if joined else senders - {sender}
        if senders:
            holders[nick] = senders
        else:
            holders.pop(nick, None)
        if lease is not None:
            expires = max(expires, lease.expires) if joined else lease.expires
        return self.announce(room, gateway, holders, expires)

    def expire(self, now: float) -> set[str]:
        """Forget every announcement whose lease ran out; returns the rooms whose nicks
        changed."""
        changed = set()
        for room in list(self._rooms):
            leases = self._rooms[room]
            gone = [gateway for gateway, lease in leases.items() if lease.expires <= now]
            if not gone:
                continue
            before = self.nicks(room)
            for gateway in gone:
                del leases[gateway]
            if not leases:
                del self._rooms[room]
            if self.nicks(room) != before:
                changed.add(room)
        return changed

    def nicks(self, room: str) -> frozenset[str]:
        leases = self._rooms.get(room, {})
        return frozenset(nick for lease in leases.values() for nick in lease.holders)

    def senders(self, room: str, nick: str) -> frozenset[str]:
        """Every sender that holds ``nick`` in ``room`` on another gateway."""
        leases = self._rooms.get(room, {})
        return frozenset().union(
            *(lease.holders.get(nick, frozenset()) for lease in leases.values())
        )

    def gateways(self, room: str) -> frozenset[str]:
        return frozenset(self._rooms.get(room, {}))


class LocalMember(Protocol):
    rooms: dict[str, str]  # room -> nick
    senders: dict[str, str]  # room -> sender

    def send(self, text: str) -> None: ...


class LocalRooms(Protocol):
    def members(self, room: str) -> Iterable[Any]: ...

    def names(self) -> Iterable[str]: ...

    def fan_out(self, room: str, text: str) -> int: ...


def local_holders(room: str, members: Iterable[LocalMember]) -> Holders:
    holders: dict[str, set[str]] = {}
    for member in members:
        nick = member.rooms.get(room)
        if nick is not None:
            holders.setdefault(nick, set()).add(member.senders[room])
    return {nick: frozenset(senders) for nick, senders in holders.items()}


def heartbeat_slice(room: str) -> int:
    return zlib.crc32(room.encode()) % HEARTBEAT_SLICES


def encode_announcement(gateway: str, holders: Holders, lease_s: float) -> bytes:
    listed = {nick: sorted(senders) for nick, senders in sorted(holders.items())}
    return json.dumps(
        {"gateway": gateway, "holders": listed, "lease_ms": round(lease_s * 1000)},
        separators=(",", ":"),
    ).encode()


def decode_announcement(body: bytes) -> tuple[str, Holders, float]:
    """(gateway, holders, lease_s) of a ``members`` body; ValueError when malformed."""
    payload = json.loads(body)
    gateway, holders, lease_ms = payload["gateway"], payload["holders"], payload["lease_ms"]
    if not isinstance(gateway, str) or not isinstance(holders, dict):
        raise ValueError("members: gateway must be a string, holders an object")
    if not isinstance(lease_ms, int) or not 0 < lease_ms <= 3_600_000:
        raise ValueError(f"members: bad lease_ms {lease_ms!r}")
    parsed: Holders = {}
    for nick, senders in holders.items():
        if not isinstance(senders, list) or not all(isinstance(s, str) for s in senders):
            raise ValueError(f"members: senders of {nick!r} must be a list of strings")
        parsed[nick] = frozenset(senders)
    return gateway, parsed, lease_ms / 1000


class Members:
    """This gateway's side of the member lists: announce, answer "who", keep the table,
    tell local clients (``members`` frames) when a room's nicks change."""

    def __init__(
        self,
        gateway_id: str,
        rooms: LocalRooms,
        publish: Publish,
        window_s: float,
        lease_s: float,
        sweep_s: float,
    ) -> None:
        self.gateway_id = gateway_id
        self.table = MemberTable()
        self._rooms = rooms
        self._publish = publish
        self.window_s = window_s
        self.lease_s = lease_s
        self.sweep_s = sweep_s
        self._to_announce: set[str] = set()
        self._to_tell: set[str] = set()
        self._announced: set[str] = set()  # rooms whose last announcement had members
        self._flush_handle: asyncio.Handle | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._heartbeat_turn = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.call_later(self._heartbeat_tick_s(), self._heartbeat),
            loop.call_later(self.sweep_s, self._sweep),
        ]

    def withdraw(self) -> None:
        """Shutting down: tell the others at once that this gateway's members are gone."""
        for timer in self._timers:
            timer.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for room in sorted(self._announced):
            self._publish("members", room, encode_announcement(self.gateway_id, {}, self.lease_s))
        self._announced.clear()

    # --- local changes -----------------------------------------------------------------------

    def joined(self, room: str, first: bool) -> None:
        """A local member joined (``first``: the room had none here, so ask the others)."""
        if first:
            self._publish("who", room, json.dumps({"gateway": self.gateway_id}).encode())
        self._changed(room)

    def left(self, room: str) -> None:
        self._changed(room)

    def _changed(self, room: str) -> None:
        self._to_announce.add(room)
        self._to_tell.add(room)
        self._schedule()

    def nicks(self, room: str) -> list[str]:
        local = local_holders(room, self._rooms.members(room))
        return sorted(self.table.nicks(room).union(local))

    def frame(self, room: str) -> str:
        return protocol.members(room, self.nicks(room))

    def held_by_another(self, room: str, nick: str, sender: str, member: Any) -> bool:
        """Whether ``nick`` is held in ``room`` by a live connection other than ``member``
        that did not join with the same client token (``sender``)."""
        for other in self._rooms.members(room):
            if (
                other is not member
                and other.rooms.get(room) == nick
                and other.senders.get(room) != sender
            ):
                return True
        remote = self.table.senders(room, nick)
        return bool(remote) and sender not in remote

    # --- from the broker ---------------------------------------------------------------------

    def received(self, kind: str, room: str, body: bytes) -> None:
        """A ``members`` or ``who`` message (ValueError/KeyError/TypeError when malformed)."""
        if kind == "who":
            asker = json.loads(body)["gateway"]
            if asker != self.gateway_id and room in self._announced:
                self._to_announce.add(room)
                self._schedule()
            return
        gateway, holders, lease_s = decode_announcement(body)
        if gateway == self.gateway_id:
            return
        expires = asyncio.get_running_loop().time() + lease_s
        if self.table.announce(room, gateway, holders, expires):
            self._to_tell.add(room)
            self._schedule()

    def presence(self, room: str, payload: dict[str, Any]) -> None:
        """A presence event: another gateway's member joined or left (applied at once, so a
        nick is known taken everywhere as soon as its join is seen)."""
        gateway, sender = payload.get("gateway"), payload.get("sender")
        if not isinstance(gateway, str) or not isinstance(sender, str):
            return  # from a gateway older than member lists: its announcements will do
        if gateway == self.gateway_id:
            return
        expires = asyncio.get_running_loop().time() + self.lease_s
        joined = payload["event"] == "join"
        if self.table.seen(room, gateway, payload["nick"], sender, joined, expires):
            self._to_tell.add(room)
            self._schedule()

    # --- timers ------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.window_s, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        announce, self._to_announce = self._to_announce, set()
        tell, self._to_tell = self._to_tell, set()
        for room in sorted(announce):
            self._announce(room)
        for room in sorted(tell):
            self._rooms.fan_out(room, self.frame(room))

    def _announce(self, room: str) -> None:
        holders = local_holders(room, self._rooms.members(room))
        if not holders and room not in self._announced:
            return
        self._publish("members", room, encode_announcement(self.gateway_id, holders, self.lease_s))
        if holders:
            self._announced.add(room)
        else:
            self._announced.discard(room)

    def _heartbeat_tick_s(self) -> float:
        return self.lease_s / 3 / HEARTBEAT_SLICES

    def _heartbeat(self) -> None:
        turn = self._heartbeat_turn
        self._heartbeat_turn = (turn + 1) % HEARTBEAT_SLICES
        for room in list(self._rooms.names()):
            if heartbeat_slice(room) == turn:
                self._announce(room)
        self._timers[0] = asyncio.get_running_loop().call_later(
            self._heartbeat_tick_s(), self._heartbeat
        )

    def _sweep(self) -> None:
        changed = self.table.expire(asyncio.get_running_loop().time())
        for room in sorted(changed):
            log.info(
                "members of a silent gateway expired",
                extra={"event": "members.expired", "room": room},
            )
            self._rooms.fan_out(room, self.frame(room))
        self._timers[1] = asyncio.get_running_loop().call_later(self.sweep_s, self._sweep)
