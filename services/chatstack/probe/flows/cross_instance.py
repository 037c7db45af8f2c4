"""cross-instance: members on different gateways all receive every message, once.

Clients are opened until two distinct ``welcome.instance`` values are seen; behind a
round-robin load balancer two connections usually suffice. A single instance (the
embedded server, or a stack with one gateway down) is SingleInstance with a clear reason,
never a vacuous pass: `chat-probe all` reports it as skipped, the flow run by name fails.
"""

from __future__ import annotations

import asyncio

from ..client import ChatClient, Clients, presence_of
from ..report import SingleInstance, Step
from ..target import Target, unique_room
from .common import check_exactly_once, settle, wait_all_messages, wait_in_history

DEFAULT_CONNECTIONS = 10


async def run(target: Target, step: Step, max_connections: int = DEFAULT_CONNECTIONS) -> None:
    room = unique_room("cross")
    async with Clients(target) as clients:
        members: list[ChatClient] = []
        for n in range(max_connections):
            members.append(await clients.connect(f"m{n}"))
            if len({m.instance for m in members}) >= 2:
                break
        instances = sorted({m.instance for m in members})
        if len(instances) < 2:
            raise SingleInstance(
                f"only one gateway instance ({instances[0]!r}) answered {len(members)} "
                f"connections to {target.ws_url}; cross-instance delivery needs at least 2"
            )
        step(f"clients landed on {len(instances)} gateway instances: {', '.join(instances)}")

        for index, member in enumerate(members):
            await member.join(room, member.name)
            # Everyone who joined earlier must see this join, whatever their gateway.
            for earlier in members[:index]:
                await earlier.wait_for(
                    presence_of(room, member.name, "join"),
                    f"presence of {member.name} ({member.instance}) joining",
                )
        step("presence: every member saw every later join, across instances")

        said = await asyncio.gather(
            *(m.say(room, f"from {m.name} on {m.instance}") for m in members)
        )
        expected = set(said)
        for member in members:
            await wait_all_messages(member, room, expected)
        await settle()
        for member in members:
            check_exactly_once(member, room, expected)
            member.check_healthy()
        step("every member received every message exactly once, across instances")

        texts = {}
        for member, message_id in zip(members, said, strict=True):
            texts[message_id] = {
                "nick": member.name,
                "text": f"from {member.name} on {member.instance}",
            }
        await wait_in_history(target, room, texts)
        step("history holds every message once")
