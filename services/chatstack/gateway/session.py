"""One websocket connection: rate limit, parse, join/leave/say, errors, abuse.

Frames are handled synchronously in the order they arrive; only a say waits (for the
broker's confirm), and it does so in its own task, so one slow publish never delays the
next frame of the same or another client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from typing import Protocol as TypingProtocol

from .. import protocol
from ..broker.base import BrokerUnavailable
from ..ratelimit import AbuseMeter, TokenBucket
from . import wire
from .core import Gateway, protocol_close_code

log = logging.getLogger(__name__)


def sender_of(client_token: str) -> str:
    """What the dedupe key holds of a client's token: a hash, so neither the broker, the
    other gateways nor the history database ever hold the secret itself."""
    return hashlib.sha256(client_token.encode("ascii")).hexdigest()[:32]


class Transport(TypingProtocol):
    """What a session needs from its websocket (tornado's handler in production)."""

    def send_frame(self, frame: bytes) -> None:
        """Queue one websocket frame (``wire.text_frame``) for the client."""

    def close(self, code: int, reason: str) -> None: ...


class Session:
    # Slots, not a __dict__: sessions are counted by the ten thousand (idle connections).
    __slots__ = (
        "abuse",
        "bucket",
        "closed",
        "conn",
        "gateway",
        "join_bucket",
        "own_sender",
        "rooms",
        "senders",
        "transport",
    )

    def __init__(self, gateway: Gateway, transport: Transport) -> None:
        self.gateway = gateway
        self.transport = transport
        self.conn = "c" + secrets.token_hex(6)
        self.rooms: dict[str, str] = {}  # room -> nick
        self.senders: dict[str, str] = {}  # room -> sender (sender_of the join's token)
        # A join without a token: a sender only this connection knows, so its says can
        # never collide with anyone's (and its retries dedupe only on this connection).
        self.own_sender = secrets.token_hex(16)
        limits = gateway.limits
        stalled = gateway.loopwatch.stalled
        self.bucket = TokenBucket(limits.rate_per_s, limits.burst, stalled=stalled)
        # Joins and leaves each tell a whole room: a tighter budget of their own on top.
        self.join_bucket = TokenBucket(limits.join_rate_per_s, limits.join_burst, stalled=stalled)
        self.abuse = AbuseMeter(limits.max_errors, limits.abuse_window_s)
        self.closed = False
        gateway.sessions.add(self)
        gateway.metrics.gauge(
            "gateway.connections.{instance}", len(gateway.sessions), instance=gateway.instance
        )
        self.send(protocol.welcome(self.conn, gateway.instance, limits.announced()))
        log.debug("connected", extra={"event": "ws.open", "conn": self.conn})

    # --- output --------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if not self.closed:
            self.transport.send_frame(wire.text_frame(text))

    def send_frame(self, frame: bytes) -> None:
        """A frame already on the wire's format: fan-out builds it once for the room."""
        if not self.closed:
            self.transport.send_frame(frame)

    def _send_error(self, code: str, detail: str, room: str | None) -> None:
        self.gateway.metrics.incr("gateway.errors.{code}", code=code)
        log.info(
            "refused frame: %s",
            code,
            extra={"event": "ws.error", "conn": self.conn, "room": room, "code": code},
        )
        self.send(protocol.error(code, detail))

    def unavailable(self, detail: str, room: str | None = None) -> None:
        """Refused because the broker is out of reach: not the client's fault, so not
        counted toward the abuse limit (an outage must not close good clients with 1008)."""
        self._send_error("unavailable", detail, room)

    def error(self, code: str, detail: str, room: str | None = None) -> None:
        """Refused because of what the client sent; sustained, it closes the socket."""
        self._send_error(code, detail, room)
        if self.abuse.record():
            self._policy_close("too many invalid frames")

    def too_slow(self, unsent_bytes: int, unsent_frames: int) -> None:
        """The client does not read what it is sent: close before its backlog grows."""
        if self.closed:
            return
        self.gateway.metrics.incr("gateway.closed.slow_reader")
        log.warning(
            "closing a connection that does not read: %d bytes in %d frames unsent",
            unsent_bytes,
            unsent_frames,
            extra={"event": "ws.slow_reader_close", "conn": self.conn},
        )
        self.close(protocol_close_code("close_try_again_later"), "not reading fast enough")

    def control_frame(self) -> None:
        """A ping or pong from the client: it costs a token like any frame. Over budget it
        gets no answer of its own (that would double a flood) but counts as an error."""
        if self.closed or self.bucket.take():
            return
        self.gateway.metrics.incr("gateway.errors.{code}", code="rate_limited")
        if self.abuse.record():
            self._policy_close("too many control frames")

    def _policy_close(self, reason: str) -> None:
        if self.closed:
            return
        self.gateway.metrics.incr("gateway.closed.policy")
        log.warning(
            "closing abusive connection: %s",
            reason,
            extra={"event": "ws.policy_close", "conn": self.conn},
        )
        self.close(protocol_close_code("close_policy_violation"), reason)

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.transport.close(code, reason)
            self.disconnected()

    # --- input ---------------------------------------------------------------------------------

    def handle(self, raw: str | bytes) -> None:
        if self.closed:
            return
        if not self.bucket.take():
            self.error("rate_limited", f"at most {self.gateway.limits.rate_per_s} frames/s")
            return
        try:
            frame = protocol.parse_client_frame(raw, self.gateway.rules)
        except protocol.ProtocolError as exc:
            self.error(exc.code, exc.detail)
            return
        if isinstance(frame, protocol.Join | protocol.Leave) and not self.join_bucket.take():
            limits = self.gateway.limits
            self.error(
                "join_rate_limited",
                f"at most {limits.join_rate_per_s} joins/leaves per second",
                frame.room,
            )
            return
        if isinstance(frame, protocol.Join):
            self._join(frame)
        elif isinstance(frame, protocol.Leave):
            self._leave(frame.room)
        else:
            self._say(frame)

    def _join(self, frame: protocol.Join) -> None:
        gateway = self.gateway
        previous = self.rooms.get(frame.room)
        if previous is None and len(self.rooms) >= gateway.limits.max_rooms:
            self.error("too_many_rooms", f"at most {gateway.limits.max_rooms} rooms", frame.room)
            return
        if not gateway.broker.ready:
            self.unavailable("the message broker is not reachable; join again later")
            return
        token = frame.client_token
        sender = sender_of(token) if token is not None else self.own_sender
        if gateway.members.held_by_another(frame.room, frame.nick, sender, self):
            self.error(
                "nick_taken",
                f"{frame.nick} is in {frame.room} already; pick another nick",
                frame.room,
            )
            return
        previous_sender = self.senders.get(frame.room, sender)
        self.senders[frame.room] = sender
        if previous == frame.nick:
            # Joined already: answer as a fresh join would, without telling the room twice.
            self.send(protocol.presence(frame.room, frame.nick, "join"))
            self.send(gateway.members.frame(frame.room))
            return
        if previous is not None:
            self._publish_presence(frame.room, previous, "leave", previous_sender)
        self.rooms[frame.room] = frame.nick
        first = gateway.rooms.add(frame.room, self)
        self._publish_presence(frame.room, frame.nick, "join", sender)
        # The joiner hears at once who is known here; the others (and the joiner again,
        # once other gateways answered "who") get the list when it changes.
        self.send(gateway.members.frame(frame.room))
        gateway.members.joined(frame.room, first)

    def _leave(self, room: str) -> None:
        nick = self.rooms.pop(room, None)
        sender = self.senders.pop(room, "")
        if nick is None:
            self.error("not_joined", f"not in room {room}", room)
            return
        self.gateway.rooms.remove(room, self)
        self._publish_presence(room, nick, "leave", sender)
        self.gateway.members.left(room)
        # The room no longer delivers to us, so confirm the leave directly.
        self.send(protocol.presence(room, nick, "leave"))

    def _publish_presence(self, room: str, nick: str, event: str, sender: str) -> None:
        # gateway and sender keep the other gateways' member tables current (members.py).
        body = json.dumps(
            {"nick": nick, "event": event, "gateway": self.gateway.gateway_id, "sender": sender}
        ).encode()
        self.gateway.publish_transient("presence", room, body)

    def _say(self, frame: protocol.Say) -> None:
        nick = self.rooms.get(frame.room)
        if nick is None:
            self.error("not_joined", f"join {frame.room} before saying something", frame.room)
            return
        self.gateway.spawn(self._publish_say(frame, nick, self.senders[frame.room]))

    async def _publish_say(self, frame: protocol.Say, nick: str, sender: str) -> None:
        gateway = self.gateway
        key = (frame.room, nick, sender, frame.client_msg_id)
        entry = gateway.idempotency.get(key)
        if entry is not None and entry.confirmed is not None:
            # The same say is in flight: its outcome is this one's too.
            try:
                await asyncio.shield(entry.confirmed)
            except BrokerUnavailable:
                self.unavailable("the message was not accepted; retry", frame.room)
                return
        if entry is not None and entry.accepted:
            gateway.metrics.incr("gateway.messages.duplicates")
            self.send(protocol.ack(frame.client_msg_id, entry.message_id))
            return
        if not gateway.broker.ready:
            self.unavailable("the message broker is not reachable; retry", frame.room)
            return
        if entry is None:
            message_id, ts = gateway.ids.new()
            entry = gateway.idempotency.start(key, message_id, ts)
            gateway.metrics.incr("gateway.messages.received")
        # else: an earlier publish failed without a confirm and the broker may have routed
        # it: publish again under the same id and time, so it is still one message.

        body = json.dumps(
            {
                "id": entry.message_id,
                "room": frame.room,
                "nick": nick,
                "text": frame.text,
                "ts": entry.ts,
                "client_msg_id": frame.client_msg_id,
                "sender": sender,
            },
            ensure_ascii=False,
        ).encode()
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.confirmed = confirmed
        started = time.monotonic()
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the publish in one more Task.
            async with asyncio.timeout(gateway.config.broker.publish_timeout_s):
                await gateway.broker.publish("message", frame.room, body)
        except (BrokerUnavailable, TimeoutError) as exc:
            entry.confirmed = None
            confirmed.set_exception(BrokerUnavailable(str(exc)))
            confirmed.exception()  # retrieved: waiting retries get it, nobody else must
            gateway.metrics.incr("gateway.publish.errors")
            log.warning(
                "publish failed: %s",
                exc or type(exc).__name__,
                extra={"event": "publish.failed", "conn": self.conn, "room": frame.room},
            )
            self.unavailable("the message was not accepted; retry", frame.room)
            return
        entry.confirmed = None
        entry.accepted = True
        confirmed.set_result(None)
        gateway.metrics.timing("gateway.publish.confirm_ms", (time.monotonic() - started) * 1000)
        gateway.metrics.incr("gateway.messages.published")
        self.send(protocol.ack(frame.client_msg_id, entry.message_id))

    # --- end -----------------------------------------------------------------------------------

    def disconnected(self) -> None:
        """The socket is gone (closed by either side): leave every room."""
        if self.closed:
            return
        self.closed = True
        gateway = self.gateway
        for room, nick in self.rooms.items():
            gateway.rooms.remove(room, self)
            self._publish_presence(room, nick, "leave", self.senders[room])
            gateway.members.left(room)
        self.rooms.clear()
        self.senders.clear()
        gateway.sessions.discard(self)
        gateway.metrics.gauge(
            "gateway.connections.{instance}", len(gateway.sessions), instance=gateway.instance
        )
        log.debug("disconnected", extra={"event": "ws.close", "conn": self.conn})
