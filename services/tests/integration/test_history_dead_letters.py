"""History never discards what was acked, on a real RabbitMQ (docs/history-durability.md):
poison messages are dead-lettered (error line, metric) and replayable with
``chat-history replay-dead-letters``; a failing store stops consuming and reports not-ready
with the reason instead of a nack loop; the delivery limit dead-letters, never drops."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pika
import pytest
from support import cluster, eventually, get, run

from chatstack import contract
from chatstack.broker.rabbitmq import RabbitHistoryBroker
from chatstack.config import BrokerConfig, load_config
from chatstack.devstack.services import script

pytestmark = pytest.mark.integration

AMQP = contract.section("amqp")
DEAD = AMQP["dead_letter_queue"]


def broker_config(rabbitmq: Any) -> BrokerConfig:
    table = rabbitmq.broker_config("history") | {"reconnect_initial_s": "0.2"}
    environ = {f"CHATSTACK_BROKER__{k.upper()}": str(v) for k, v in table.items()}
    return load_config("history", environ=environ).broker


def chat_message(n: int, **fields: Any) -> bytes:
    message = {"id": f"01JDLQ{n:020d}", "room": "dlq", "nick": "ada", "text": f"m{n}",
               "ts": 1764470400000 + n, "client_msg_id": f"dlq-{n}"}  # fmt: skip
    return json.dumps(message | fields).encode()


def publish(amqp_connect: Any, bodies: list[bytes]) -> None:
    channel = amqp_connect("gateway").channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(
            AMQP["exchange"],
            "msg.dlq",
            body,
            pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            mandatory=True,
        )


def depth(amqp_connect: Any, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue."""
    ok = amqp_connect("history").channel().queue_declare(queue, passive=True)
    return ok.method.message_count, ok.method.consumer_count


def reject_until_dead_lettered(amqp_connect: Any, bodies: list[bytes]) -> int:
    """Publish, then reject (requeue) whatever history's queue delivers, as a consumer
    stuck in a nack loop would, until the delivery limit moves it away; the rejections."""
    channel = amqp_connect("history").channel()
    channel.queue_purge(AMQP["history_queue"])
    publish(amqp_connect, bodies)
    rejections = 0
    while True:
        method, _props, _body = channel.basic_get(AMQP["history_queue"], auto_ack=False)
        if method is None:
            return rejections
        channel.basic_reject(method.delivery_tag, requeue=True)
        rejections += 1
        assert rejections <= len(bodies) * (AMQP["history_delivery_limit"] + 1)


def empty_dead_letters(amqp_connect: Any) -> None:
    """Start from empty queues: other tests of the session leave messages (some poison)."""
    channel = amqp_connect("history").channel()
    channel.queue_declare(DEAD, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_purge(DEAD)
    channel.queue_purge(AMQP["history_queue"])


def write_config(tmp_path: Path, rabbitmq: Any, database: Path) -> Path:
    lines = ['instance = "it-replay"', "[broker]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in rabbitmq.broker_config("history").items()]
    lines += ["[history]", f"database = {json.dumps(str(database))}"]
    path = tmp_path / "history.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def replay(config: Path) -> tuple[int, list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
    done = subprocess.run(
        [script("chat-history"), "replay-dead-letters", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_the_history_queue_has_the_dead_letter_policy(rabbitmq: Any) -> None:
    listed = rabbitmq.ctl(
        "list_queues", "-p", rabbitmq.vhost, "name", "policy", "--no-table-headers"
    )
    policies = dict(line.split("\t") for line in listed.strip().splitlines() if "\t" in line)
    assert policies[AMQP["history_queue"]] == AMQP["history_policy"]


def test_poison_is_dead_lettered_and_replayable(
    tmp_path: Path, rabbitmq: Any, amqp_connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    empty_dead_letters(amqp_connect)
    database = tmp_path / "history.sqlite3"

    async def consume() -> None:
        async with cluster(tmp_path, [], RabbitHistoryBroker(broker_config(rabbitmq))) as c:
            await eventually(lambda: c.history.ready, timeout=20)
            publish(
                amqp_connect,
                [
                    chat_message(1),
                    b"\xff not json",  # never a chat message
                    chat_message(2, text="\ud800"),  # valid JSON, SQLite cannot take it
                    chat_message(3),
                ],
            )
            await eventually(lambda: c.history.store.count("dlq") == 2, timeout=20)
            await eventually(lambda: depth(amqp_connect, DEAD)[0] == 2, timeout=20)
            assert c.history.ready  # poison does not stop history

    with caplog.at_level(logging.ERROR):
        run(consume())
    dead = [r for r in caplog.records if getattr(r, "event", "") == "history.dead_lettered"]
    assert len(dead) == 2
    assert "refused by the store" in dead[1].getMessage()

    # Nothing storable yet: both stay dead-lettered, and the command says so (exit 1).
    config = write_config(tmp_path, rabbitmq, database)
    code, lines = replay(config)
    summary = [line for line in lines if line.get("event") == "history.replay"]
    assert code == 1, lines
    assert (summary[0]["found"], summary[0]["stored"], summary[0]["left"]) == (2, 0, 2)
    assert depth(amqp_connect, DEAD)[0] == 2

    # A message dead-lettered over the delivery limit is stored by the replay; a dead letter
    # that was stored already counts as stored, not as a second row.
    reject_until_dead_lettered(amqp_connect, [chat_message(4), chat_message(1)])
    code, lines = replay(config)
    summary = [line for line in lines if line.get("event") == "history.replay"]
    assert (summary[0]["found"], summary[0]["stored"], summary[0]["left"]) == (4, 2, 2), lines
    assert code == 1
    db = sqlite3.connect(database)
    texts = sorted(row[0] for row in db.execute("SELECT text FROM messages WHERE room = 'dlq'"))
    db.close()
    assert texts == ["m1", "m3", "m4"]
    assert depth(amqp_connect, DEAD)[0] == 2
    empty_dead_letters(amqp_connect)


def test_a_failing_store_stops_consuming_and_is_not_ready(
    tmp_path: Path, rabbitmq: Any, amqp_connect: Any
) -> None:
    """A lock held by another process (a backup, an operator's sqlite3 shell) makes every
    commit fail: history stops consuming, holds the batch unacked (no requeue, so no
    delivery counted), says why on /readyz, and carries on by itself once the lock goes."""
    empty_dead_letters(amqp_connect)

    async def scenario() -> None:
        broker = RabbitHistoryBroker(broker_config(rabbitmq))
        broker.store_retry_s = 0.2
        async with cluster(tmp_path, [], broker) as c:
            await eventually(lambda: c.history.ready, timeout=20)
            locker = sqlite3.connect(c.history.store.path, isolation_level=None)
            locker.execute("PRAGMA busy_timeout=0")
            locker.execute("BEGIN IMMEDIATE")
            try:
                publish(amqp_connect, [chat_message(10)])
                await eventually(lambda: c.history.fault is not None, timeout=30)
                ready = await get(f"{c.history_served.http}/readyz")
                assert ready.code == 503
                assert "database is locked" in json.loads(ready.body)["reason"]
                # Not consuming: a message published now stays in the queue (a quorum
                # queue still counts the cancelled consumer while it holds the first one).
                publish(amqp_connect, [chat_message(11)])
                await eventually(lambda: depth(amqp_connect, AMQP["history_queue"])[0] == 1)
                consumers = rabbitmq.ctl("list_consumers", "-p", rabbitmq.vhost, "queue_name")
                assert AMQP["history_queue"] not in consumers.split()
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            await eventually(lambda: c.history.ready, timeout=30)
            await eventually(lambda: c.history.store.count("dlq") == 2)
            assert depth(amqp_connect, AMQP["history_queue"]) == (0, 1)
            assert depth(amqp_connect, DEAD)[0] == 0
            assert (await get(f"{c.history_served.http}/readyz")).code == 200

    run(scenario(), timeout=120)


def test_over_the_delivery_limit_is_dead_lettered_not_dropped(
    rabbitmq: Any, amqp_connect: Any
) -> None:
    """A consumer that keeps rejecting a message (what the old nack loop did) ends with the
    message in the dead-letter queue, not discarded (RabbitMQ counts basic.reject requeues
    toward the delivery limit in every version)."""
    empty_dead_letters(amqp_connect)
    rejections = reject_until_dead_lettered(amqp_connect, [chat_message(20)])
    assert rejections == AMQP["history_delivery_limit"] + 1
    channel = amqp_connect("history").channel()
    method, _props, body = channel.basic_get(DEAD, auto_ack=True)
    assert method is not None and json.loads(body)["id"] == json.loads(chat_message(20))["id"]
