"""The services against a real RabbitMQ (TLS, per-service users): cross-instance delivery,
ack only after the broker confirmed, retries stored once, and recovery from a broker
restart with nothing acked lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from support import Client, cluster, eventually, get, run

from chatstack.broker.rabbitmq import RabbitGatewayBroker, RabbitHistoryBroker
from chatstack.config import BrokerConfig, load_config

pytestmark = pytest.mark.integration


def broker_config(rabbitmq: Any, role: str, **extra: str) -> BrokerConfig:
    table = (
        rabbitmq.broker_config(role)
        | {
            # Fast reconnects keep the tests short; production keeps the defaults.
            "reconnect_initial_s": "0.2",
            "reconnect_max_s": "1.0",
        }
        | extra
    )
    environ = {
        f"CHATSTACK_BROKER__{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in table.items()
    }
    return load_config(role, environ=environ).broker


def rabbit_cluster(tmp_path: Path, rabbitmq: Any, gateways: int = 2, **env: str) -> Any:
    brokers = [
        RabbitGatewayBroker(broker_config(rabbitmq, "gateway"), f"test-gw-{i}")
        for i in range(gateways)
    ]
    history = RabbitHistoryBroker(broker_config(rabbitmq, "history"), "test-history")
    return cluster(tmp_path, brokers, history, **env)


async def all_ready(c: Any) -> bool:
    for served in [*c.gateway_served, c.history_served]:
        if (await get(f"{served.http}/readyz")).code != 200:
            return False
    return True


def test_two_gateways_deliver_across_instances(tmp_path: Path, rabbitmq: Any) -> None:
    async def scenario() -> None:
        async with rabbit_cluster(tmp_path, rabbitmq) as c:
            await eventually(lambda: all_ready(c), timeout=20)
            one = await Client.connect(c.gateway_served[0].ws)
            two = await Client.connect(c.gateway_served[1].ws)
            assert one.welcome["instance"] != two.welcome["instance"]
            await one.join("lobby", "one")
            await two.join("lobby", "two")
            await one.expect("presence", nick="two", event="join")
            a = await one.say("lobby", "from one", "1")
            b = await two.say("lobby", "from two", "2")
            for client in (one, two):
                await client.expect("message", id=a["id"])
                await client.expect("message", id=b["id"])
            # A room nobody on gateway two joined is not delivered there.
            await one.join("private", "one")
            await one.say("private", "only here", "3")
            await two.say("lobby", "marker", "4")
            await two.expect("message", text="marker")
            assert all(m["room"] == "lobby" for m in two.messages())
            await eventually(lambda: c.history.store.count() == 4)

    run(scenario())


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (the Debian scripts put a shell above the VM)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def signal_tree(root: int, sig: signal.Signals) -> None:
    for pid in process_tree(root):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def test_ack_only_after_the_broker_confirmed(tmp_path: Path, rabbitmq: Any) -> None:
    """Freeze the broker (SIGSTOP): a say gets no ack until the broker runs again."""
    pid = rabbitmq.pids["rabbitmq"]
    assert any(b"beam" in Path(f"/proc/{p}/comm").read_bytes() for p in process_tree(pid)), (
        "the Erlang VM is not under the broker's pid"
    )

    async def scenario() -> None:
        async with rabbit_cluster(tmp_path, rabbitmq, gateways=1) as c:
            await eventually(lambda: all_ready(c), timeout=20)
            client = await Client.connect(c.gateway_served[0].ws)
            await client.join("lobby", "ada")
            signal_tree(pid, signal.SIGSTOP)
            try:
                await client.send(type="say", room="lobby", text="wait for it", client_msg_id="w")
                with pytest.raises(AssertionError, match="no ack"):
                    await client.expect("ack", timeout=2.0)
            finally:
                signal_tree(pid, signal.SIGCONT)
            ack = await client.expect("ack", client_msg_id="w", timeout=10)
            # Acked means durable: history has it (or will, from the durable queue).
            await eventually(
                lambda: ack["id"] in {m.id for m in c.history.store.latest("lobby", 5)}
            )

    run(scenario(), timeout=90)


def test_retried_message_is_stored_once(tmp_path: Path, rabbitmq: Any) -> None:
    async def scenario() -> None:
        async with rabbit_cluster(tmp_path, rabbitmq) as c:
            await eventually(lambda: all_ready(c), timeout=20)
            first = await Client.connect(c.gateway_served[0].ws)
            await first.join("retry-room", "ada")
            original = await first.say("retry-room", "hello", "k1")
            # Gateway two has no member in the room: it cannot know the original.
            second = await Client.connect(c.gateway_served[1].ws)
            await second.join("retry-room", "ada")
            again = await second.say("retry-room", "hello", "k1")
            await second.say("retry-room", "after", "k2")
            await eventually(lambda: c.history.store.count("retry-room") == 2)
            stored = [m.id for m in c.history.store.latest("retry-room", 10)]
            assert original["id"] in stored
            assert again["id"] == original["id"] or again["id"] not in stored

    run(scenario())


def test_broker_restart_loses_nothing_acked(tmp_path: Path, rabbitmq: Any) -> None:
    """Talk steadily while RabbitMQ restarts. Gateways and history reconnect and rebind by
    themselves, /readyz goes false then true, every acked message is stored, nothing said
    while the broker was down got a false ack, and retries of those are stored once."""

    async def scenario() -> None:
        async with rabbit_cluster(
            tmp_path, rabbitmq, limits__burst="1000", limits__rate_per_s="1000"
        ) as c:
            await eventually(lambda: all_ready(c), timeout=20)
            talker = await Client.connect(c.gateway_served[0].ws)
            listener = await Client.connect(c.gateway_served[1].ws)
            await talker.join("steady", "talker")
            await listener.join("steady", "listener")

            acked: dict[str, str] = {}
            refused: list[str] = []
            seen_not_ready = False
            counter = 0

            async def say_one() -> None:
                nonlocal counter
                counter += 1
                cmid = f"s{counter}"
                await talker.send(type="say", room="steady", text=f"n{counter}", client_msg_id=cmid)
                frame = await talker.first(
                    lambda f: (
                        f["type"] == "error" or (f["type"] == "ack" and f["client_msg_id"] == cmid)
                    ),
                    f"answer to {cmid}",
                    timeout=15,
                )
                if frame["type"] == "ack":
                    acked[cmid] = frame["id"]
                else:
                    assert frame["code"] == "unavailable", frame
                    refused.append(cmid)

            for _ in range(10):
                await say_one()
            restart = (
                __import__("asyncio").get_running_loop().run_in_executor(None, rabbitmq.restart)
            )
            while not restart.done():
                await say_one()
                if not await all_ready(c):
                    seen_not_ready = True
                await __import__("asyncio").sleep(0.05)
            await restart
            await eventually(lambda: all_ready(c), timeout=30)
            assert seen_not_ready, "readyz never went false during the restart"
            assert refused, "no say was refused while the broker was down"
            for _ in range(10):
                await say_one()

            # Retries (same client_msg_id) of everything refused now succeed.
            for cmid in list(refused):
                number = cmid[1:]
                await talker.send(type="say", room="steady", text=f"n{number}", client_msg_id=cmid)
                ack = await talker.expect("ack", client_msg_id=cmid, timeout=15)
                acked[cmid] = ack["id"]

            # Bindings were restored: the listener on gateway two hears new messages.
            marker = await talker.say("steady", "marker", "marker")
            await listener.expect("message", id=marker["id"], timeout=15)

            await eventually(lambda: c.history.store.count("steady") >= len(acked) + 1, timeout=30)
            rows = c.history.store.after("steady", "", 10_000)
            stored_ids = {m.id for m in rows}
            missing = {cmid for cmid, mid in acked.items() if mid not in stored_ids}
            assert not missing, f"acked but not stored: {sorted(missing)}"
            texts = [m.text for m in rows]
            assert len(texts) == len(set(texts)), "a message was stored twice"
            assert c.gateways[0].metrics is not None

    run(scenario(), timeout=180)
