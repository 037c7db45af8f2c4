"""Chat users that keep talking through failures, for the stack tests' scenarios.

The users themselves (``Chatter``: reconnect, resend, recover, books) are chat-probe's
(``chatstack.probe.traffic``), the same code ``chat-probe traffic`` and the NixOS VM tests
run; this module only binds them to a stack's URL. Attempt times are wall-clock
(``time.time()``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any, Self

from chatstack.devstack.services import Service
from chatstack.probe import traffic
from chatstack.probe.target import Target
from chatstack.probe.traffic import Attempt, Chatter, talk
from chatstack.probe.traffic import check_acked_stored_once as assert_acked_stored_once

__all__ = [
    "Attempt",
    "Chatter",
    "ReadinessLog",
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


class ReadinessLog:
    """Polls /readyz of ``services`` in a thread: (wall-clock time, status) per instance, the
    clock chat-probe stamps its attempts with."""

    def __init__(self, services: Sequence[Service], every_s: float = 0.1) -> None:
        self.services = list(services)
        self.every_s = every_s
        self.samples: dict[str, list[tuple[float, int]]] = {
            s.instance: [] for s in self.services
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for service in self.services:
                status, _body = service.status("/readyz")
                self.samples[service.instance].append((time.time(), status))
            time.sleep(self.every_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def first(self, instance: str, status: int, after: float) -> float | None:
        """When ``instance`` first answered ``status`` at or after ``after``."""
        samples = self.samples[instance]
        return next((t for t, s in samples if s == status and t >= after), None)

    def wait_all_ready(self, timeout: float = 60.0) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(s.status("/readyz")[0] == 200 for s in self.services):
                return time.time()
            time.sleep(0.1)
        raise AssertionError(f"services not ready again within {timeout:.0f} s")
