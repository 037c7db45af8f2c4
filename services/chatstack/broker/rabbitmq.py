"""RabbitMQ brokers on pika's AsyncioConnection (tornado's asyncio loop, no threads).

Topology (names from contract.toml [amqp]): a durable topic exchange; each gateway has its
own exclusive, server-named queue bound per room while it has local members; history
consumes a durable quorum queue bound to every chat message, whose dead letters (poison
messages, deliveries over the limit: a broker policy) go to a dead-letter exchange and
queue that history declares too. Chat messages are persistent
and published with confirms (and ``mandatory``, so a message no queue would keep is
refused rather than silently lost); presence events are transient.

Both brokers reconnect forever with exponential backoff and full jitter (reset after a
session that got fully set up), restore their topology, and report not-ready meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.asyncio_connection import AsyncioConnection

from .. import contract
from ..config import BrokerConfig
from .base import STORE_RETRY_S, BrokerUnavailable, GatewayBroker, HistoryBroker, StoreFault

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 15.0
_HISTORY_PREFETCH = 200
# Routing keys remembered per (kind, room); the cache starts over beyond this many rooms.
_ROUTING_KEYS_KEPT = 10000


def connection_parameters(config: BrokerConfig, name: str) -> pika.ConnectionParameters:
    ssl_options = None
    if config.tls:
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if config.cert_file is not None and config.key_file is not None:
            context.load_cert_chain(str(config.cert_file), str(config.key_file))
        ssl_options = pika.SSLOptions(context, server_hostname=config.server_name)
    return pika.ConnectionParameters(
        host=config.host,
        port=config.port,
        virtual_host=config.vhost,
        # Kept after connecting: every reconnect needs it again.
        credentials=pika.PlainCredentials(config.user, config.password, erase_on_connect=False),
        heartbeat=config.heartbeat_s,
        blocked_connection_timeout=config.blocked_connection_timeout_s,
        connection_attempts=1,
        socket_timeout=10,
        stack_timeout=_CONNECT_TIMEOUT_S,
        ssl_options=ssl_options,
        client_properties={"connection_name": name},
    )


def _describe(error: BaseException | str) -> str:
    """pika's connection errors often have an empty str(); their repr says what failed."""
    if isinstance(error, BaseException):
        return str(error) or repr(error)
    return error


class _CoalescingConnection(AsyncioConnection):  # type: ignore[misc]
    """pika's AsyncioConnection, writing every frame of one loop turn in one TLS write.

    pika hands each AMQP frame to its transport separately (a publish is three: method,
    header, body) and its TLS transport sends each as its own record and syscall: that was
    the gateway's second-largest cost. Here the frames are gathered and handed over once per
    loop turn, in the order pika produced them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outgoing: list[bytes] = []
        super().__init__(*args, **kwargs)

    def _output_marshaled_frames(self, marshaled_frames: Any) -> None:
        if not self._outgoing:
            self.ioloop.call_soon(self._emit_outgoing)
        for frame in marshaled_frames:
            self.bytes_sent += len(frame)
            self.frames_sent += 1
            self._outgoing.append(frame)

    def _emit_outgoing(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if frames and self._transport is not None:
            self._adapter_emit_data(b"".join(frames))


def _routing_prefix(kind: str) -> str:
    return contract.routing_key(kind, "")


class _Session:
    """One connection + channel; fails every waiter when it goes away."""

    def __init__(self, connection: AsyncioConnection, channel: pika.channel.Channel) -> None:
        self.connection = connection
        self.channel = channel
        self.waiters: set[asyncio.Future[Any]] = set()
        self.closed = asyncio.Event()

    def lost(self, reason: str) -> None:
        for waiter in list(self.waiters):
            if not waiter.done():
                waiter.set_exception(BrokerUnavailable(reason))
                waiter.exception()
        self.waiters.clear()
        self.closed.set()


class _RabbitBase:
    """Connect, set up, wait for loss, back off, again — until ``close``."""

    role = "broker"

    def __init__(self, config: BrokerConfig, name: str) -> None:
        self.config = config
        self.name = name
        self._session: _Session | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    # From the GatewayBroker / HistoryBroker side of the subclasses.
    _set_ready: Callable[[bool], None]
    on_reconnect: Callable[[], None]

    async def _setup(self, session: _Session) -> None:
        raise NotImplementedError

    def _lost(self, session: _Session) -> None:
        """Subclass hook: the session is gone."""

    async def start(self) -> None:
        self._closing = False
        self._runner = asyncio.create_task(self._run(), name=f"{self.role}-broker")

    async def close(self) -> None:
        self._closing = True
        session = self._session
        if session is not None and session.connection.is_open:
            session.connection.close()
            try:
                await asyncio.wait_for(session.closed.wait(), 5.0)
            except TimeoutError:
                pass
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        self._set_ready(False)

    async def _run(self) -> None:
        attempt = 0
        connected_before = False
        while not self._closing:
            session = None
            try:
                session = await self._connect()
                await self._setup(session)
            except Exception as exc:  # whatever went wrong, the answer is to retry later
                log.warning(
                    "%s broker connection failed: %s",
                    self.role,
                    _describe(exc),
                    extra={"event": "broker.connect_failed"},
                )
                if session is not None:
                    self._drop(session, "setup failed")
            else:
                attempt = 0  # a good session resets the backoff
                if connected_before:
                    self.on_reconnect()
                connected_before = True
                log.info(
                    "%s broker connected to %s:%d",
                    self.role,
                    self.config.host,
                    self.config.port,
                    extra={"event": "broker.connected"},
                )
                self._set_ready(True)
                await session.closed.wait()
                self._set_ready(False)
            if self._closing:
                break
            delay = random.uniform(
                0, min(self.config.reconnect_max_s, self.config.reconnect_initial_s * 2**attempt)
            )
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(delay)

    async def _connect(self) -> _Session:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[AsyncioConnection] = loop.create_future()
        holder: dict[str, _Session] = {}

        def on_open(connection: Any) -> None:
            if not opened.done():
                opened.set_result(connection)

        def on_open_error(connection: Any, error: BaseException | str) -> None:
            if not opened.done():
                opened.set_exception(BrokerUnavailable(f"cannot connect: {_describe(error)}"))

        def on_close(connection: Any, reason: BaseException) -> None:
            if not opened.done():
                opened.set_exception(BrokerUnavailable(f"connection closed: {_describe(reason)}"))
            session = holder.get("session")
            if session is not None:
                self._drop(session, f"connection closed: {reason}")

        connection = _CoalescingConnection(
            connection_parameters(self.config, self.name),
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=loop,
        )
        try:
            await asyncio.wait_for(opened, _CONNECT_TIMEOUT_S)
        except BaseException:
            if connection.is_open:
                connection.close()
            raise

        channel_opened: asyncio.Future[pika.channel.Channel] = loop.create_future()
        connection.channel(on_open_callback=channel_opened.set_result)
        try:
            channel = await asyncio.wait_for(channel_opened, _CONNECT_TIMEOUT_S)
        except BaseException:
            if connection.is_open:
                connection.close()
            raise
        session = _Session(connection, channel)
        holder["session"] = session

        def on_channel_closed(channel: Any, reason: BaseException) -> None:
            # A channel error (e.g. a permission refused) leaves the connection half-useful:
            # close it so everything is set up again on a fresh one.
            self._drop(session, f"channel closed: {reason}")

        channel.add_on_close_callback(on_channel_closed)
        connection.add_on_connection_blocked_callback(lambda *a: self._blocked(True))
        connection.add_on_connection_unblocked_callback(lambda *a: self._blocked(False))
        self._session = session
        return session

    def _blocked(self, blocked: bool) -> None:
        # The broker stops reading publishes during a memory or disk alarm: say so on /readyz
        # and answer says with `unavailable` instead of letting them wait.
        log.warning(
            "broker %s publishers",
            "blocked" if blocked else "unblocked",
            extra={"event": "broker.blocked" if blocked else "broker.unblocked"},
        )
        self._set_ready(not blocked)

    def _drop(self, session: _Session, reason: str) -> None:
        if session.closed.is_set():
            return
        self._lost(session)
        session.lost(reason)
        if session.connection.is_open:
            session.connection.close()
        if self._session is session:
            self._session = None

    @staticmethod
    def _rpc(session: _Session, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a pika method that takes ``callback`` and await that callback's frame."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        session.waiters.add(future)

        def done(frame: Any) -> None:
            session.waiters.discard(future)
            if not future.done():
                future.set_result(frame)

        method(*args, callback=done, **kwargs)
        return future

    async def _declare_exchange(self, session: _Session) -> None:
        await self._rpc(
            session,
            session.channel.exchange_declare,
            exchange=contract.amqp("exchange"),
            exchange_type=contract.amqp("exchange_type"),
            durable=True,
        )


class RabbitGatewayBroker(_RabbitBase, GatewayBroker):
    role = "gateway"

    def __init__(self, config: BrokerConfig, name: str = "chat-gateway") -> None:
        _RabbitBase.__init__(self, config, name)
        GatewayBroker.__init__(self)
        self._rooms: set[str] = set()
        self._queue: str | None = None
        self._next_tag = 0
        self._confirms: dict[int, asyncio.Future[None]] = {}
        self._returned: set[int] = set()
        self._prefixes = {kind: _routing_prefix(kind) for kind in contract.BROKER_KINDS}
        # Looked up once: publish runs for every say and presence event.
        self._exchange: str = contract.amqp("exchange")
        self._routing_keys: dict[tuple[str, str], str] = {}

    async def _setup(self, session: _Session) -> None:
        channel = session.channel
        self._next_tag = 0
        self._confirms = {}
        self._returned = set()
        await self._rpc(session, channel.confirm_delivery, ack_nack_callback=self._on_confirm)
        channel.add_on_return_callback(self._on_return)
        await self._declare_exchange(session)
        # Server-named, exclusive, auto-delete: gone with the connection (RabbitMQ 4.3 refuses
        # transient non-exclusive queues), and a new one is bound on reconnect.
        declared = await self._rpc(
            session, channel.queue_declare, queue="", exclusive=True, auto_delete=True
        )
        self._queue = declared.method.queue
        await asyncio.gather(*(self._bind(session, room) for room in sorted(self._rooms)))
        await self._rpc(
            session,
            channel.basic_consume,
            queue=self._queue,
            on_message_callback=self._on_message,
            auto_ack=True,
        )

    def _lost(self, session: _Session) -> None:
        for future in self._confirms.values():
            if not future.done():
                future.set_exception(BrokerUnavailable("connection lost before the confirm"))
                future.exception()
        self._confirms = {}

    def _keys(self, room: str) -> list[str]:
        return [contract.routing_key(kind, room) for kind in contract.BROKER_KINDS]

    def _bind(self, session: _Session, room: str) -> Any:
        return asyncio.gather(
            *(
                self._rpc(
                    session,
                    session.channel.queue_bind,
                    queue=self._queue,
                    exchange=contract.amqp("exchange"),
                    routing_key=key,
                )
                for key in self._keys(room)
            )
        )

    def bind(self, room: str) -> None:
        self._rooms.add(room)
        session = self._session
        if session is not None and self.ready and self._queue is not None:
            # Not awaited: frames on a channel are processed in order, so a publish sent
            # after this reaches the queue only once the binding exists.
            for key in self._keys(room):
                session.channel.queue_bind(
                    queue=self._queue, exchange=contract.amqp("exchange"), routing_key=key
                )

    def unbind(self, room: str) -> None:
        self._rooms.discard(room)
        session = self._session
        if session is not None and self.ready and self._queue is not None:
            for key in self._keys(room):
                session.channel.queue_unbind(
                    queue=self._queue, exchange=contract.amqp("exchange"), routing_key=key
                )

    async def publish(self, kind: str, room: str, body: bytes) -> None:
        session = self._session
        if session is None or not self.ready:
            raise BrokerUnavailable("not connected to the broker")
        self._next_tag += 1
        tag = self._next_tag
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirms[tag] = confirmed
        durable = kind == "message"
        routing_key = self._routing_keys.get((kind, room))
        if routing_key is None:
            if len(self._routing_keys) > _ROUTING_KEYS_KEPT:
                self._routing_keys.clear()
            routing_key = self._routing_keys[kind, room] = contract.routing_key(kind, room)
        try:
            session.channel.basic_publish(
                exchange=self._exchange,
                routing_key=routing_key,
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent
                    if durable
                    else pika.DeliveryMode.Transient,
                    type=kind,
                    # Lets a basic.return be matched with the confirm that follows it.
                    correlation_id=str(tag),
                ),
                mandatory=durable,
            )
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._confirms.pop(tag, None)
            raise BrokerUnavailable(f"publish failed: {exc}") from None
        await confirmed

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        if method.multiple:
            # Tags are inserted in increasing order: stop at the first one not covered.
            tags = list(itertools.takewhile(lambda t: t <= tag, self._confirms))
        else:
            tags = [tag]
        for t in tags:
            future = self._confirms.pop(t, None)
            if future is None or future.done():
                continue
            if acked and t not in self._returned:
                future.set_result(None)
            else:
                reason = "nacked by the broker" if not acked else "no queue accepted it"
                future.set_exception(BrokerUnavailable(reason))
                future.exception()
            self._returned.discard(t)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        log.error(
            "broker returned an unroutable message (%s)",
            method.reply_text,
            extra={"event": "publish.returned"},
        )
        if properties.correlation_id and properties.correlation_id.isdigit():
            self._returned.add(int(properties.correlation_id))

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        key = method.routing_key
        for kind, prefix in self._prefixes.items():
            if key.startswith(prefix):
                self.on_delivery(kind, key[len(prefix) :], body)
                return
        log.error("unexpected routing key %s", key, extra={"event": "broker.unexpected_key"})


async def _declare_dead_letters(session: _Session) -> Any:
    """The dead-letter exchange and queue (durable quorum), bound; returns the declare-ok.

    The same declaration as the broker definitions (devstack, NixOS) and the replay
    command (history/replay.py), so none of them conflicts.
    """
    channel = session.channel
    exchange, queue = contract.amqp("dead_letter_exchange"), contract.amqp("dead_letter_queue")
    await _RabbitBase._rpc(
        session,
        channel.exchange_declare,
        exchange=exchange,
        exchange_type=contract.amqp("dead_letter_exchange_type"),
        durable=True,
    )
    declared = await _RabbitBase._rpc(
        session,
        channel.queue_declare,
        queue=queue,
        durable=True,
        arguments={"x-queue-type": contract.amqp("history_queue_type")},
    )
    await _RabbitBase._rpc(
        session, channel.queue_bind, queue=queue, exchange=exchange, routing_key=""
    )
    return declared


class RabbitHistoryBroker(_RabbitBase, HistoryBroker):
    role = "history"

    def __init__(self, config: BrokerConfig, name: str = "chat-history") -> None:
        _RabbitBase.__init__(self, config, name)
        HistoryBroker.__init__(self)
        self._batch: list[tuple[int, bytes]] = []
        self._flushing = False
        self._consumer_tag: str | None = None
        self.store_retry_s = STORE_RETRY_S

    async def _setup(self, session: _Session) -> None:
        channel = session.channel
        queue = contract.amqp("history_queue")
        await self._declare_exchange(session)
        await _declare_dead_letters(session)
        # Only x-queue-type: dead-lettering and the delivery limit come from a broker policy
        # (contract amqp.history_policy), which also covers a queue declared before it.
        declared = await self._rpc(
            session,
            channel.queue_declare,
            queue=queue,
            durable=True,
            arguments={"x-queue-type": contract.amqp("history_queue_type")},
        )
        await self._rpc(
            session,
            channel.queue_bind,
            queue=queue,
            exchange=contract.amqp("exchange"),
            routing_key=contract.amqp("history_binding_key"),
        )
        await self._rpc(session, channel.basic_qos, prefetch_count=_HISTORY_PREFETCH)
        self._batch = []
        # The queue is FIFO with us as its only consumer: the first message_count deliveries
        # are what queued while we were away; once they are stored we are caught up.
        self._consuming(declared.method.message_count)
        await self._consume(session)

    async def _consume(self, session: _Session) -> None:
        ok = await self._rpc(
            session,
            session.channel.basic_consume,
            queue=contract.amqp("history_queue"),
            on_message_callback=self._on_message,
            auto_ack=False,
        )
        self._consumer_tag = ok.method.consumer_tag

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._batch.append((method.delivery_tag, body))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush(self._session))

    def _current(self, session: _Session) -> bool:
        return self._session is session and session.channel.is_open

    async def _flush(self, session: _Session | None) -> None:
        try:
            while self._batch and session is not None and self._session is session:
                batch, self._batch = self._batch, []
                poison = await self._store_held(session, batch)
                if poison is None:
                    return  # the session is gone: the broker redelivers, the store dedupes
                if self._current(session):
                    self._settle(session, batch, poison)
                    self._stored(len(batch))
        finally:
            self._flushing = False

    async def _store_held(
        self, session: _Session, batch: list[tuple[int, bytes]]
    ) -> set[int] | None:
        """Store the batch, pausing the consumer while the store fails (the batch stays
        unacked and is tried again); the poison indexes, or None if the session went away."""
        assert self.on_store is not None
        paused = False
        while True:
            try:
                poison = set(await self.on_store([body for _, body in batch]))
            except StoreFault:
                if not paused and self._current(session) and self._consumer_tag is not None:
                    # No more deliveries until the store works; what we hold stays unacked.
                    session.channel.basic_cancel(self._consumer_tag)
                    paused = True
                await asyncio.sleep(self.store_retry_s)
                if not self._current(session):
                    return None
                continue
            except Exception:
                # A bug, not the store: hold like a fault rather than requeue (which counts
                # toward the delivery limit), and say so loudly.
                log.exception(
                    "storing %d message(s) failed unexpectedly; holding them",
                    len(batch),
                    extra={"event": "history.store_error"},
                )
                await asyncio.sleep(self.store_retry_s)
                if not self._current(session):
                    return None
                continue
            if paused and self._current(session):
                await self._consume(session)
            return poison

    @staticmethod
    def _settle(session: _Session, batch: list[tuple[int, bytes]], poison: set[int]) -> None:
        """Ack what is stored, reject the poison (the policy dead-letters a rejection).

        Deliveries on a channel arrive in tag order and are stored in that order, so
        without poison one multiple-ack settles the whole batch. basic.reject, not
        basic.nack: both dead-letter with requeue=false, and reject is the one that RabbitMQ
        4.3+ counts as a failed delivery."""
        channel = session.channel
        if not poison:
            channel.basic_ack(batch[-1][0], multiple=True)
            return
        for index, (tag, _body) in enumerate(batch):
            if index in poison:
                channel.basic_reject(tag, requeue=False)
            else:
                channel.basic_ack(tag)
