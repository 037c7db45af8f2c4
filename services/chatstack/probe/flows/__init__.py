"""The named flows of chat-probe. Each is ``async def run(target, step)``: it calls
``step(text)`` once per check that held and raises FlowFailed with a one-line reason
(SingleInstance when it needs two gateways and only one answered).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..report import Step
from ..target import Target
from . import abuse, chat, cors, cross_instance, members, origin, recovery_flow

Flow = Callable[[Target, Step], Awaitable[None]]

# Flows that check across gateways: `all` skips them on a single instance (make run).
NEEDS_TWO_INSTANCES = ("cross-instance", "members")

# Order of `all`: cheap and basic first, so the first failure is the most telling one.
FLOWS: dict[str, Flow] = {
    "chat": chat.run,
    "cross-instance": cross_instance.run,
    "members": members.run,
    "recovery": recovery_flow.run,
    "origin": origin.run,
    "cors": cors.run,
    "abuse": abuse.run,
}
