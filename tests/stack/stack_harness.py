"""Chat users that keep talking through failures, for the stack tests' scenarios.

The users themselves (``Chatter``: reconnect, resend, recover, books) are chat-probe's
(``chatstack.probe.traffic``), the same code ``chat-probe traffic`` and the NixOS VM tests
run; this module only binds them to a stack's URL. Attempt times are wall-clock
(``time.time()``).
"""

from __future__ import annotations

import secrets
from typing import Any

from chatstack.probe import traffic
from chatstack.probe.target import Target
from chatstack.probe.traffic import Attempt, Chatter, talk
from chatstack.probe.traffic import check_acked_stored_once as assert_acked_stored_once

__all__ = [
    "Attempt",
    "Chatter",
    "assert_acked_stored_once",
    "talk",
    "unique_room",
    "wait_history_has",
]


async def wait_history_has(
    url: str, room: str, texts: set[str], timeout: float = 45.0
) -> list[dict[str, Any]]:
    """Poll history through nginx until every text is stored."""
    target = Target(base_url=url, origin=url, timeout=30.0)
    return await traffic.wait_history_has(target, room, texts, timeout)


def unique_room(flow: str) -> str:
    return f"stack-{flow}-{secrets.token_hex(4)}"
