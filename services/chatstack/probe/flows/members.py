"""members: who is in a room is the same on every gateway, and a nick is one person's.

Two users on two different gateways (clients are opened until two ``welcome.instance``
values are seen). The second one's join must be answered with the first one in the room's
``members``; both lists follow joins and leaves; the nick one of them holds is refused to a
third connection (``nick_taken``) but given back to the same client (its client_token).

The checks are functions of their own: the stack test that kills a gateway (kill -9; a
probe against a URL cannot) uses them for the part after the kill.
"""

from __future__ import annotations

from ..client import ChatClient, Clients, Frame
from ..report import SingleInstance, Step
from ..target import Target, unique_room

DEFAULT_CONNECTIONS = 10


def members_are(room: str, nicks: list[str]):  # type: ignore[no-untyped-def]
    def matches(frame: Frame) -> bool:
        return (
            frame["type"] == "members"
            and frame.get("room") == room
            and (frame.get("nicks") == sorted(nicks))
        )

    return matches


async def wait_members(
    client: ChatClient, room: str, nicks: list[str], since: int = 0, timeout: float | None = None
) -> None:
    """Wait until ``client`` is told that exactly ``nicks`` are in ``room``: a members frame
    from index ``since`` on, or the last one before it already saying so."""
    told = [f for f in client.frames[:since] if f["type"] == "members" and f["room"] == room]
    if told and members_are(room, nicks)(told[-1]):
        return
    await client.wait_for(
        members_are(room, nicks),
        f"members of {room} to be {sorted(nicks)} (last told: {last_members(client, room)})",
        since=since,
        timeout=timeout,
    )


def last_members(client: ChatClient, room: str) -> list[str] | None:
    told = [f for f in client.frames if f["type"] == "members" and f["room"] == room]
    return told[-1].get("nicks") if told else None


async def on_two_instances(
    clients: Clients, target: Target, names: tuple[str, str], max_connections: int
) -> tuple[ChatClient, ChatClient]:
    """Two clients on different gateways (the spare connections are closed)."""
    first = await clients.connect(names[0])
    for _ in range(max_connections):
        second = await clients.connect(names[1])
        if second.instance != first.instance:
            return first, second
        await second.close()
    raise SingleInstance(
        f"only one gateway instance ({first.instance!r}) answered {max_connections + 1} "
        f"connections to {target.ws_url}; member lists across gateways need at least 2"
    )


async def check_nick_taken(clients: Clients, room: str, nick: str, holder_token: str) -> None:
    """Another client is refused ``nick``; the holder's token gets it on a new socket."""
    imposter = await clients.connect("imposter")
    since = imposter.mark()
    await imposter.send({"type": "join", "room": room, "nick": nick})
    await imposter.expect_error("nick_taken", since)
    await imposter.close()
    again = await clients.connect(f"{nick}-again")
    await again.join(room, nick, client_token=holder_token)
    await again.close()


async def run(target: Target, step: Step, max_connections: int = DEFAULT_CONNECTIONS) -> None:
    room = unique_room("members")
    async with Clients(target) as clients:
        ada, bob = await on_two_instances(clients, target, ("ada", "bob"), max_connections)
        step("two clients on two gateway instances")
        await ada.join(room, "ada")
        await wait_members(ada, room, ["ada"])
        since = bob.mark()
        await bob.join(room, "bob")
        await wait_members(bob, room, ["ada", "bob"], since)
        step("a join is answered with the members on the other gateway")
        await wait_members(ada, room, ["ada", "bob"])
        step("the other gateway's member list follows the join")

        await check_nick_taken(clients, room, "bob", bob.client_token)
        step("a held nick is refused to another client (nick_taken), given back to its own")

        since = ada.mark()
        await bob.leave(room)
        await wait_members(ada, room, ["ada"], since)
        step("a leave on one gateway leaves the list on the other")
        for client in (ada, bob):
            client.check_healthy()
