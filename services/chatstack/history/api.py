"""GET /api/rooms/{room}/messages?after=<id>|before=<id>&limit=<n> (docs/protocol.md,
"History API")."""

from __future__ import annotations

import re
from collections.abc import Callable

import tornado.web

from .. import contract, ids
from ..metrics import Metrics
from .store import HistoryStore

_LIMIT = re.compile(r"[0-9]{1,6}")


def messages_route() -> str:
    """The tornado URL pattern of the contract's messages route."""
    prefix, _, suffix = contract.route("messages").partition("{room}")
    return re.escape(prefix) + "([^/]+)" + re.escape(suffix)


class MessagesHandler(tornado.web.RequestHandler):
    def initialize(self, store: HistoryStore, metrics: Metrics, live: Callable[[], bool]) -> None:
        self.store = store
        self.metrics = metrics
        # Consuming from the broker: a recovering client rereads until this holds (protocol).
        self.live = live
        protocol = contract.section("protocol")
        self.room_pattern = re.compile(protocol["room_pattern"])
        self.limit_default = int(protocol["page_limit_default"])
        self.limit_max = int(protocol["page_limit_max"])

    def _refuse(self, code: str, detail: str) -> None:
        self.set_status(400)
        self.write({"error": {"code": code, "detail": detail}})

    def get(self, room: str) -> None:
        self.metrics.incr("history.api.requests")
        self.set_header("Cache-Control", "no-store")
        if not self.room_pattern.fullmatch(room):
            return self._refuse("bad_room", f"room must match {self.room_pattern.pattern}")
        after = self.get_query_argument("after", None)
        if after is not None:
            after = after.upper()
            if not ids.is_id_prefix(after):
                return self._refuse(
                    "bad_after", "after must be up to 26 characters of the id alphabet"
                )
        before = self.get_query_argument("before", None)
        if before is not None:
            before = before.upper()
            if not ids.is_id_prefix(before) or not before:
                return self._refuse(
                    "bad_before", "before must be 1 to 26 characters of the id alphabet"
                )
            if after is not None:
                return self._refuse("bad_before", "before and after cannot be combined")
        limit_text = self.get_query_argument("limit", None)
        limit = self.limit_default
        if limit_text is not None:
            # ASCII digits only, and few of them: str.isdigit() accepts "²" (int() then
            # raises) and int() refuses more than 4,300 digits.
            if not _LIMIT.fullmatch(limit_text) or not 1 <= int(limit_text) <= self.limit_max:
                return self._refuse("bad_limit", f"limit must be 1 to {self.limit_max}")
            limit = int(limit_text)
        if not self.store.is_open:
            self.set_status(503)
            self.write({"error": {"code": "unavailable", "detail": "history store not open"}})
            return
        if after is not None:
            messages = self.store.after(room, after, limit)
        elif before is not None:
            messages = self.store.before(room, before, limit)
        else:
            messages = self.store.latest(room, limit)
        self.write({"room": room, "messages": [m.as_json() for m in messages], "live": self.live()})
