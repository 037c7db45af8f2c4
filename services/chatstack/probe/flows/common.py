"""Checks shared by several flows."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable

from chatstack import contract

from ..client import ChatClient
from ..http import history_page
from ..recovery import Message
from ..report import FlowFailed
from ..target import Target

# How long to keep listening after the last expected frame before counting: a duplicate
# (the bug "exactly once" rules out) would arrive within this time on a healthy system.
SETTLE_S = 0.5


async def settle() -> None:
    await asyncio.sleep(SETTLE_S)


async def wait_all_messages(client: ChatClient, room: str, ids: Iterable[str]) -> None:
    for message_id in ids:
        await client.wait_message(room, message_id)


def check_exactly_once(client: ChatClient, room: str, expected: set[str]) -> None:
    """``client`` received every id of ``expected`` once and no other message in ``room``."""
    counts = Counter(m["id"] for m in client.messages(room))
    missing = expected - counts.keys()
    extra = counts.keys() - expected
    twice = sorted(i for i, n in counts.items() if n > 1)
    if missing or extra or twice:
        raise FlowFailed(
            f"{client.name} (instance {client.instance}): expected {len(expected)} messages "
            f"exactly once, missing {len(missing)}, unexpected {len(extra)}, "
            f"duplicated {len(twice)}{' e.g. ' + twice[0] if twice else ''}"
        )


async def wait_in_history(target: Target, room: str, expected: dict[str, Message]) -> None:
    """History's newest page holds every expected message, fields as said, in id order.

    History commits after the broker confirms, so it may lag the live frames: poll.
    """
    deadline = time.monotonic() + target.timeout
    while True:
        page = (
            await history_page(target, room, None, contract.section("protocol")["page_limit_max"])
        ).messages
        stored = {m["id"]: m for m in page}
        missing = [i for i in expected if i not in stored]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise FlowFailed(
                f"history of the room lacks {len(missing)} of {len(expected)} acked messages "
                f"after {target.timeout}s, e.g. {missing[0]}"
            )
        await asyncio.sleep(0.1)
    ids = [m["id"] for m in page]
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        raise FlowFailed(f"history page is not in strictly increasing id order: {ids}")
    for message_id, said in expected.items():
        got = stored[message_id]
        for key in ("nick", "text", "ts"):
            if key in said and got[key] != said[key]:
                raise FlowFailed(
                    f"history message {message_id}: {key} is {got[key]!r}, "
                    f"live frame had {said[key]!r}"
                )
