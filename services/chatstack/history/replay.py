"""``chat-history replay-dead-letters``: store what the dead-letter queue holds, once.

Dead letters are chat messages history could not store: poison messages (never storable by
this version) and deliveries over the queue's delivery limit (docs/history-durability.md).
After the cause is fixed (a new version, a repaired database), this takes every message
that was in the dead-letter queue when it started, stores it with the same validation and
dedupe as the service (a message stored before is a duplicate, not a second row), and acks
it. What still cannot be stored is put back in the dead-letter queue, untouched. It runs
beside a running chat-history (SQLite WAL allows it) and uses the service's own config and
broker user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pika
import pika.adapters.blocking_connection

from .. import contract
from ..broker.base import StoreFault
from ..broker.rabbitmq import connection_parameters
from ..config import Config
from ..metrics import Metrics
from .store import HistoryStore
from .writer import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    found: int  # in the dead-letter queue when the replay started
    stored: int  # stored now, or found stored already (a duplicate)
    left: int  # still not storable: back in the dead-letter queue


def declare_dead_letters(channel: pika.adapters.blocking_connection.BlockingChannel) -> int:
    """Declare the dead-letter exchange and queue as the service does; the queue's depth."""
    exchange, queue = contract.amqp("dead_letter_exchange"), contract.amqp("dead_letter_queue")
    channel.exchange_declare(
        exchange, exchange_type=contract.amqp("dead_letter_exchange_type"), durable=True
    )
    declared = channel.queue_declare(
        queue, durable=True, arguments={"x-queue-type": contract.amqp("history_queue_type")}
    )
    channel.queue_bind(queue, exchange, routing_key="")
    return int(declared.method.message_count)


def replay_dead_letters(config: Config, metrics: Metrics | None = None) -> ReplayResult:
    metrics = metrics or Metrics()
    store = HistoryStore(config.history_database)
    store.open()  # StoreUnusable: replaying into a damaged store would not help
    writer = Writer(store, metrics)
    connection = pika.BlockingConnection(
        connection_parameters(config.broker, f"{config.instance}-replay")
    )
    queue = contract.amqp("dead_letter_queue")
    stored = 0
    kept: list[int] = []
    try:
        channel = connection.channel()
        found = declare_dead_letters(channel)
        # One pass over what is there now: kept messages stay unacked until the end, so
        # basic.get never hands the same one out twice.
        for _ in range(found):
            method, _properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            try:
                poison = writer.write([body])
            except StoreFault:
                channel.basic_nack(method.delivery_tag, requeue=True)
                raise
            if poison:
                kept.append(method.delivery_tag)
            else:
                channel.basic_ack(method.delivery_tag)
                stored += 1
        for tag in kept:
            channel.basic_nack(tag, requeue=True)
    finally:
        if connection.is_open:
            connection.close()
        store.close()
    if stored:
        metrics.incr("history.messages.replayed", stored)
    result = ReplayResult(found=found, stored=stored, left=len(kept))
    log.log(
        logging.WARNING if kept else logging.INFO,
        "replayed the dead-letter queue: %d found, %d stored, %d left in it",
        result.found,
        result.stored,
        result.left,
        extra={
            "event": "history.replay",
            "found": result.found,
            "stored": result.stored,
            "left": result.left,
        },
    )
    return result
