"""MemberTable (gateway/members.py) against a plain model: announcements replace a
gateway's members, presence events patch them, leases expire, nothing else is remembered."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatstack.gateway.members import (
    HEARTBEAT_SLICES,
    Holders,
    Members,
    MemberTable,
    decode_announcement,
    encode_announcement,
)

GATEWAYS = st.sampled_from(["g1", "g2", "g3"])
ROOMS = st.sampled_from(["lobby", "dev"])
NICKS = st.sampled_from(["ada", "bob", "cy"])
SENDERS = st.sampled_from(["s1", "s2"])
HOLDERS = st.dictionaries(NICKS, st.frozensets(SENDERS, min_size=1), max_size=3)

ACTIONS = st.one_of(
    st.tuples(st.just("announce"), ROOMS, GATEWAYS, HOLDERS, st.integers(1, 20)),
    st.tuples(st.just("seen"), ROOMS, GATEWAYS, NICKS, SENDERS, st.booleans(), st.integers(1, 20)),
    st.tuples(st.just("tick"), st.integers(0, 10)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ACTIONS, max_size=40))
def test_the_table_matches_a_model_of_leases(actions: list[tuple]) -> None:
    table = MemberTable()
    model: dict[tuple[str, str], tuple[Holders, int]] = {}  # (room, gateway) -> lease
    now = 0

    def nicks(room: str) -> frozenset[str]:
        return frozenset(n for (r, _), (h, _) in model.items() if r == room for n in h)

    for action in actions:
        if action[0] == "announce":
            _, room, gateway, holders, lease = action
            before = nicks(room)
            if holders:
                model[room, gateway] = (holders, now + lease)
            else:
                model.pop((room, gateway), None)
            assert table.announce(room, gateway, holders, now + lease) == (nicks(room) != before)
        elif action[0] == "seen":
            _, room, gateway, nick, sender, joined, lease = action
            before = nicks(room)
            holders, expires = model.get((room, gateway), ({}, now + lease))
            holders = dict(holders)
            senders = holders.get(nick, frozenset())
            senders = senders | {sender} if joined else senders - {sender}
            holders = (
                {**holders, nick: senders}
                if senders
                else {n: s for n, s in holders.items() if n != nick}
            )
            if (room, gateway) in model and joined:
                expires = max(expires, now + lease)
            if holders:
                model[room, gateway] = (holders, expires)
            else:
                model.pop((room, gateway), None)
            changed = table.seen(room, gateway, nick, sender, joined, now + lease)
            assert changed == (nicks(room) != before)
        else:
            now += action[1]
            before = {room: nicks(room) for room in ("lobby", "dev")}
            model = {key: value for key, value in model.items() if value[1] > now}
            changed = table.expire(now)
            assert changed == {r for r in ("lobby", "dev") if nicks(r) != before[r]}
        for room in ("lobby", "dev"):
            assert table.nicks(room) == nicks(room)
            assert table.gateways(room) == {g for (r, g) in model if r == room}
            for nick in ("ada", "bob", "cy"):
                expected = frozenset().union(
                    *(h.get(nick, frozenset()) for (r, _), (h, _) in model.items() if r == room)
                )
                assert table.senders(room, nick) == expected


@given(st.text(min_size=1, max_size=20), HOLDERS, st.floats(0.001, 3600))
def test_announcements_survive_the_wire(gateway: str, holders: Holders, lease_s: float) -> None:
    got_gateway, got_holders, got_lease = decode_announcement(
        encode_announcement(gateway, holders, lease_s)
    )
    assert (got_gateway, got_holders) == (gateway, holders)
    assert abs(got_lease - round(lease_s * 1000) / 1000) < 1e-9


def test_a_malformed_announcement_is_refused() -> None:
    for body in (b'{"gateway": 1, "holders": {}, "lease_ms": 5}', b'{"gateway": "g"}',
                 b'{"gateway": "g", "holders": {"a": "s"}, "lease_ms": 5}',
                 b'{"gateway": "g", "holders": {}, "lease_ms": 0}'):  # fmt: skip
        try:
            decode_announcement(body)
        except (ValueError, KeyError, TypeError):
            continue
        raise AssertionError(f"accepted {body!r}")


class _Member:
    def __init__(self, room: str, nick: str) -> None:
        self.rooms = {room: nick}
        self.senders = {room: f"s-{nick}"}

    def send(self, text: str) -> None:
        pass


class _Rooms:
    def __init__(self, rooms: int) -> None:
        self.by_room = {f"room-{n}": [_Member(f"room-{n}", f"nick-{n}")] for n in range(rooms)}

    def members(self, room: str) -> list[_Member]:
        return self.by_room.get(room, [])

    def names(self) -> list[str]:
        return list(self.by_room)

    def fan_out(self, room: str, text: str) -> int:
        return 0


def test_the_heartbeat_announces_every_room_once_per_round_spread_over_it() -> None:
    async def scenario() -> None:
        published: list[str] = []
        members = Members(
            "gw",
            _Rooms(2000),
            lambda kind, room, body: published.append(room),
            window_s=0.25,
            lease_s=15.0,
            sweep_s=1.0,
        )
        members.start()
        try:
            per_tick = []
            for _ in range(2 * HEARTBEAT_SLICES):
                before = len(published)
                members._heartbeat()
                per_tick.append(len(published) - before)
        finally:
            members.withdraw()
        announced = published[: sum(per_tick)]
        assert Counter(announced) == {f"room-{n}": 2 for n in range(2000)}
        # No tick carries much more than its share (2000 / HEARTBEAT_SLICES = 100).
        assert max(per_tick) < 3 * 2000 / HEARTBEAT_SLICES
        assert members._heartbeat_tick_s() * HEARTBEAT_SLICES == pytest.approx(15.0 / 3)

    asyncio.run(scenario())
