"""Each service user can do exactly what contract ``amqp.users`` allows, and nothing else.

Names come from the contract; every refusal is asserted as RabbitMQ's 403 ACCESS_REFUSED
(a channel closed for another reason would not count), and every "allowed" case really
performs the operation, so a permission that is too tight fails here as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pytest

from chatstack.devstack import contract as contract_mod

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AMQP = contract_mod.load()["amqp"]
ACCESS_REFUSED = 403


def refused(action: Callable[[], Any]) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
        action()
    assert err.value.reply_code == ACCESS_REFUSED, err.value


def routing_key(room: str) -> str:
    return AMQP["message_routing_key"].replace("{room}", room)


def own_queue(channel: Any) -> str:
    """What a gateway does: an exclusive, server-named (amq.gen-…) queue."""
    result = channel.queue_declare(queue="", exclusive=True, auto_delete=True)
    name: str = result.method.queue
    assert name.startswith(AMQP["server_named_queue_prefix"])
    return name


# --- gateway ---------------------------------------------------------------------------


def test_gateway_declares_exchange_and_own_queue_binds_publishes_and_consumes(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("gateway").channel()
    ch.confirm_delivery()
    ch.exchange_declare(AMQP["exchange"], exchange_type=AMQP["exchange_type"], durable=True)
    queue = own_queue(ch)
    room = f"perm-{uuid.uuid4().hex[:8]}"
    ch.queue_bind(queue, AMQP["exchange"], routing_key=routing_key(room))
    body = uuid.uuid4().bytes
    ch.basic_publish(
        AMQP["exchange"], routing_key(room), body, pika.BasicProperties(delivery_mode=2)
    )
    method, _props, got = ch.basic_get(queue, auto_ack=True)
    assert method is not None and got == body
    ch.queue_unbind(queue, AMQP["exchange"], routing_key=routing_key(room))


def test_gateway_cannot_consume_the_history_queue(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("gateway").channel()
    refused(lambda: ch.basic_get(AMQP["history_queue"]))


def test_gateway_cannot_purge_or_delete_the_history_queue(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    conn = amqp_connect("gateway")
    refused(lambda: conn.channel().queue_purge(AMQP["history_queue"]))
    refused(lambda: conn.channel().queue_delete(AMQP["history_queue"]))


def test_gateway_cannot_publish_to_the_history_queue_directly(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("gateway").channel()
    ch.confirm_delivery()
    # The default exchange routes by queue name: writing to it needs write on amq.default.
    refused(lambda: ch.basic_publish("", AMQP["history_queue"], b"x"))


def test_gateway_cannot_declare_a_named_queue(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("gateway").channel()
    refused(lambda: ch.queue_declare(queue=f"gateway-owned-{uuid.uuid4().hex[:6]}", exclusive=True))


def test_gateway_cannot_bind_to_another_exchange(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    conn = amqp_connect("gateway")
    ch = conn.channel()
    queue = own_queue(ch)
    refused(lambda: ch.queue_bind(queue, "amq.topic", routing_key="#"))


def test_gateway_cannot_declare_other_exchanges(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("gateway").channel()
    refused(lambda: ch.exchange_declare(f"{AMQP['exchange']}.other", exchange_type="fanout"))


# --- history -----------------------------------------------------------------------------


def test_history_declares_binds_and_consumes_its_queue(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("history").channel()
    ch.queue_declare(
        AMQP["history_queue"], durable=True, arguments={"x-queue-type": AMQP["history_queue_type"]}
    )
    ch.queue_bind(AMQP["history_queue"], AMQP["exchange"], routing_key=AMQP["history_binding_key"])
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume(AMQP["history_queue"], lambda *a: None)


def test_history_cannot_publish_to_the_exchange(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("history").channel()
    ch.confirm_delivery()
    refused(lambda: ch.basic_publish(AMQP["exchange"], routing_key("forged"), b"forged"))


def test_history_cannot_declare_server_named_queues(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("history").channel()
    refused(lambda: ch.queue_declare(queue="", exclusive=True))


def test_history_cannot_bind_its_queue_to_another_exchange(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    ch = amqp_connect("history").channel()
    refused(lambda: ch.queue_bind(AMQP["history_queue"], "amq.topic", routing_key="#"))


# --- together ----------------------------------------------------------------------------


def test_a_gateway_message_reaches_the_history_queue(amqp_connect) -> None:  # type: ignore[no-untyped-def]
    gw = amqp_connect("gateway").channel()
    gw.confirm_delivery()
    body = f"perm-{uuid.uuid4().hex}".encode()
    gw.basic_publish(
        AMQP["exchange"], routing_key("permcheck"), body, pika.BasicProperties(delivery_mode=2)
    )
    hist = amqp_connect("history").channel()
    others: list[int] = []
    found = False
    # Other tests may have left messages in the durable queue: look past them, put them back.
    for _ in range(10_000):
        method, _props, got = hist.basic_get(AMQP["history_queue"], auto_ack=False)
        if method is None:
            break
        if got == body:
            hist.basic_ack(method.delivery_tag)
            found = True
            break
        others.append(method.delivery_tag)
    for tag in others:
        hist.basic_nack(tag, requeue=True)
    assert found, "a message published by the gateway did not reach the history queue"
