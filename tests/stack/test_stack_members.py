"""Member lists across gateways survive a gateway's kill -9 (issue 11 item 1).

ada and bob are on different gateways, each sees both. bob's gateway is killed (no drain,
no withdrawal): ada's list loses bob within the lease (gateway.members_lease_s, 15 s) plus
one sweep — bounded by 30 s — and bob, reconnecting through nginx with his client token,
is back in it. The checks are the `members` probe flow's own.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from chatstack.devstack.stack import Stack
from chatstack.probe.client import Clients
from chatstack.probe.flows.members import (
    check_nick_taken,
    on_two_instances,
    wait_members,
)
from chatstack.probe.target import Target, unique_room

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

# The promise of docs/protocol.md ("Members"): a dead gateway's members are gone by then.
GONE_WITHIN_S = 30.0


async def scenario(stack: Stack) -> float:
    target = Target(base_url=stack.url, origin=stack.url, timeout=10.0)
    room = unique_room("members-kill")
    async with Clients(target) as clients:
        ada, bob = await on_two_instances(clients, target, ("ada", "bob"), 10)
        await ada.join(room, "ada")
        since = bob.mark()
        asked_at = time.monotonic()
        await bob.join(room, "bob")
        # bob's gateway had nobody in the room: ada comes from its "who" round trip.
        await wait_members(bob, room, ["ada", "bob"], since)
        answered_after = time.monotonic() - asked_at
        await wait_members(ada, room, ["ada", "bob"])

        victim = next(
            n for n, g in enumerate(stack.gateways, 1) if g.instance == bob.instance
        )
        since = ada.mark()
        await asyncio.to_thread(stack.kill_gateway, victim)
        killed_at = time.monotonic()
        await bob.wait_closed()
        await wait_members(ada, room, ["ada"], since, timeout=GONE_WITHIN_S)
        gone_after = time.monotonic() - killed_at

        # bob comes back through nginx (only the survivor answers) with his own token.
        since = ada.mark()
        back = await clients.connect("bob-back")
        assert back.instance == ada.instance
        await back.join(room, "bob", client_token=bob.client_token)
        await wait_members(ada, room, ["ada", "bob"], since)
        await wait_members(back, room, ["ada", "bob"])
        await check_nick_taken(clients, room, "bob", bob.client_token)
        for client in (ada, back):
            client.check_healthy()
    print(
        f"members: bob's join answered with ada (other gateway) after {answered_after:.2f} s"
    )
    return gone_after


def test_a_killed_gateways_members_leave_every_list_and_come_back(stack: Stack) -> None:
    gone_after = asyncio.run(scenario(stack))
    print(f"members: a killed gateway's members left the list after {gone_after:.1f} s")
