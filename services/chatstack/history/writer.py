"""Turns message bodies from the broker into stored rows, telling failures apart.

Two kinds of failure are told apart (docs/history-durability.md):

- a **poison** message can never be stored, whatever the state of the store (not a valid
  chat message, or refused by SQLite on its own, e.g. an unencodable text or an integer
  out of range): it is dead-lettered, with an error line and a metric;
- a **store fault** (damaged file, I/O error, disk full) would fail any message:
  ``StoreFault`` tells the broker to stop consuming and hold what it has, and the service
  reports not-ready with the reason until a store succeeds again. Never a nack loop.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from .. import contract
from ..broker.base import StoreFault
from ..metrics import Metrics
from .store import HistoryStore

# What SQLite (or the sqlite3 binding) raises for one message that no store could ever
# take: a constraint, a value it cannot bind (text with lone surrogates, an int > 64 bits).
_MESSAGE_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError)

log = logging.getLogger(__name__)


# The hash of a client token (gateway.session.sender_of); missing from older gateways.
_SENDER = re.compile(r"[0-9a-f]{1,64}")


def _valid(message: Any, patterns: dict[str, re.Pattern[str]]) -> bool:
    return (
        isinstance(message, dict)
        and (
            "sender" not in message
            or (
                isinstance(message["sender"], str)
                and _SENDER.fullmatch(message["sender"]) is not None
            )
        )
        and all(isinstance(message.get(k), str) for k in ("id", "text"))
        and isinstance(message.get("ts"), int)
        and all(
            isinstance(message.get(k), str) and pattern.fullmatch(message[k]) is not None
            for k, pattern in patterns.items()
        )
    )


class Writer:
    """Validates and stores batches; ``fault`` says why the store fails (None: it works)."""

    def __init__(
        self,
        store: HistoryStore,
        metrics: Metrics,
        on_fault_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.on_fault_changed = on_fault_changed
        self.fault: str | None = None
        protocol = contract.section("protocol")
        self._patterns = {
            "room": re.compile(protocol["room_pattern"]),
            "nick": re.compile(protocol["nick_pattern"]),
            "client_msg_id": re.compile(protocol["client_msg_id_pattern"]),
        }

    def write(self, bodies: list[bytes]) -> list[int]:
        """Store what can be stored; return the indexes of the poison messages (the broker
        dead-letters them). Raises StoreFault when the store itself fails."""
        poison: list[int] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, body in enumerate(bodies):
            try:
                message = json.loads(body)
            except ValueError:
                message = None
            if _valid(message, self._patterns):
                valid.append((index, message))
            else:
                self._poisoned(body, "not a valid chat message")
                poison.append(index)
        if valid:
            started = time.monotonic()
            stored, duplicates, refused = self._store(valid)
            self.metrics.timing("history.store.commit_ms", (time.monotonic() - started) * 1000)
            if stored:
                self.metrics.incr("history.messages.stored", stored)
            if duplicates:
                self.metrics.incr("history.messages.duplicates", duplicates)
                log.info(
                    "skipped %d duplicate(s)", duplicates, extra={"event": "history.duplicates"}
                )
            for index, reason in refused:
                self._poisoned(bodies[index], reason)
                poison.append(index)
        if self.fault is not None:
            log.info(
                "store works again; consuming",
                extra={"event": "history.store_recovered", "reason": self.fault},
            )
            self.fault = None
            self.on_fault_changed()
        return sorted(poison)

    def _store(
        self, messages: list[tuple[int, dict[str, Any]]]
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """(stored, duplicates, [(index, reason) of messages SQLite refuses on their own])."""
        try:
            stored, duplicates = self.store.store(m for _, m in messages)
            return stored, duplicates, []
        except _MESSAGE_ERRORS:
            pass
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
        # One message spoils the batch: store them one by one to find it.
        stored = duplicates = 0
        refused = []
        for index, message in messages:
            try:
                one, dup = self.store.store([message])
            except _MESSAGE_ERRORS as exc:
                refused.append((index, f"refused by the store: {exc}"))
                continue
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
            stored += one
            duplicates += dup
        return stored, duplicates, refused

    def _failed(self, exc: BaseException) -> None:
        reason = f"store failing: {exc}"
        if self.fault is None:
            self.fault = reason
            self.metrics.incr("history.store.failures")
            log.error(
                "the store fails (%s): stopped consuming; nothing is acked or requeued until"
                " it works again",
                exc,
                extra={"event": "history.store_failed", "reason": reason},
            )
            self.on_fault_changed()
        raise StoreFault(reason) from exc

    def _poisoned(self, body: bytes, reason: str) -> None:
        self.metrics.incr("history.messages.dead_lettered")
        log.error(
            "dead-lettering a message that can never be stored (%d bytes): %s",
            len(body),
            reason,
            extra={"event": "history.dead_lettered", "reason": reason},
        )
