"""Who is in a room across gateways (members frames) and one nick per person in a room
(nick_taken), on the in-memory broker with two gateways in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import Client, cluster, run

from chatstack.broker.base import BrokerUnavailable
from chatstack.broker.memory import MemoryHub


async def members_become(client: Client, room: str, nicks: list[str]) -> dict[str, Any]:
    return await client.first(
        lambda f: f["type"] == "members" and f["room"] == room and f["nicks"] == nicks,
        f"members {nicks}",
    )


def silence(gateway: Any) -> None:
    """What a kill -9 looks like to the other gateways: not another word from this one."""
    for timer in gateway.members._timers:
        timer.cancel()

    async def killed(kind: str, room: str, body: bytes) -> None:
        raise BrokerUnavailable("killed")

    gateway.broker.publish = killed


def test_a_join_is_answered_with_the_members_on_every_gateway(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        async with cluster(tmp_path, [hub.gateway(), hub.gateway()], hub.history()) as c:
            one, two = c.gateway_served
            ada = await Client.connect(one.ws)
            await ada.join("lobby", "ada")
            await members_become(ada, "lobby", ["ada"])
            # bob's gateway has nobody in the lobby yet: it learns ada by asking ("who").
            bob = await Client.connect(two.ws)
            await bob.join("lobby", "bob")
            await members_become(bob, "lobby", ["ada", "bob"])
            await members_become(ada, "lobby", ["ada", "bob"])
            cy = await Client.connect(two.ws)
            await cy.join("lobby", "cy")
            await members_become(cy, "lobby", ["ada", "bob", "cy"])
            await members_become(ada, "lobby", ["ada", "bob", "cy"])
            bob.close()
            await members_become(ada, "lobby", ["ada", "cy"])
            await members_become(cy, "lobby", ["ada", "cy"])
            await ada.send(type="leave", room="lobby")
            await members_become(cy, "lobby", ["cy"])

    run(scenario())


def test_members_of_a_silent_gateway_expire_and_come_back_elsewhere(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        brokers = [hub.gateway(), hub.gateway()]
        async with cluster(tmp_path, brokers, hub.history(), gateway__members_lease_s="1") as c:
            one, two = c.gateway_served
            ada = await Client.connect(one.ws)
            await ada.join("lobby", "ada")
            bob = await Client.connect(two.ws)
            await bob.join("lobby", "bob")
            await members_become(ada, "lobby", ["ada", "bob"])
            ada.unmatched.clear()  # ["ada"] from before bob joined must not count
            silence(c.gateways[1])
            # Heartbeats go on (lease / 3) while the silent one's lease runs out.
            await members_become(ada, "lobby", ["ada"])
            again = await Client.connect(one.ws)
            await again.join("lobby", "bob")  # the same client token: its nick back
            await members_become(ada, "lobby", ["ada", "bob"])

    run(scenario())


def test_a_nick_held_in_the_room_is_refused_on_any_gateway(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        async with cluster(tmp_path, [hub.gateway(), hub.gateway()], hub.history()) as c:
            one, two = c.gateway_served
            ada = await Client.connect(one.ws)
            await ada.join("lobby", "ada", "ada-own-secret-token-0123")
            watcher = await Client.connect(two.ws)
            await watcher.join("lobby", "watcher")
            for url in (one.ws, two.ws):
                other = await Client.connect(url)
                await other.send(
                    type="join", room="lobby", nick="ada", client_token="someone-else-0123456789"
                )
                assert (await other.expect("error"))["code"] == "nick_taken"
                # Without a token nobody can prove to be the holder either.
                await other.send(type="join", room="lobby", nick="ada")
                assert (await other.expect("error"))["code"] == "nick_taken"
                await other.join("lobby", "ada2", "someone-else-0123456789")
                await other.join("elsewhere", "ada", "someone-else-0123456789")  # per room
                other.close()
            # The same client (its token) reconnecting gets the nick back at once, on
            # either gateway, although its old connection may still be open.
            for url in (one.ws, two.ws):
                same = await Client.connect(url)
                await same.join("lobby", "ada", "ada-own-secret-token-0123")
                same.close()
            ada.close()
            await members_become(watcher, "lobby", ["watcher"])
            taker = await Client.connect(two.ws)
            await taker.join_when_free("lobby", "ada", "someone-else-0123456789")

    run(scenario())
