"""The services against a real RabbitMQ (TLS, per-service users): cross-instance delivery,
ack only after the broker confirmed, retries stored once, and recovery from a broker
restart with nothing acked lost."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from support import Client, cluster, eventually, get, history_pages, nick_token, run
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from chatstack import contract
from chatstack.broker.rabbitmq import RabbitGatewayBroker, RabbitHistoryBroker
from chatstack.config import BrokerConfig, load_config
from chatstack.probe import recovery

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


def test_history_is_live_only_once_its_backlog_is_stored(tmp_path: Path, rabbitmq: Any) -> None:
    """While history is away, acked messages queue for it. When it consumes again the API
    answers ``live: false`` until what was queued is stored, so the first ``live: true``
    answer holds every one of them (what a recovering client relies on)."""

    async def scenario() -> None:
        async with rabbit_cluster(
            tmp_path, rabbitmq, limits__burst="1000", limits__rate_per_s="1000"
        ) as c:
            await eventually(lambda: all_ready(c), timeout=20)
            await c.history.broker.close()
            talker = await Client.connect(c.gateway_served[0].ws)
            await talker.join("backlog", "talker")
            # More than one prefetch window, so storing the backlog takes several batches.
            acked = set()
            for i in range(500):
                acked.add((await talker.say("backlog", f"b{i}", f"b{i}"))["id"])
            pages = history_pages(c.history_served.http, "backlog")
            assert not (await pages(None, 1)).live
            await c.history.broker.start()
            answers = []
            while not answers or not answers[-1].live:
                answers.append(await pages(None, 500))
            # With live meaning only "consuming", this fails: the first live answer comes
            # while the backlog is still being stored.
            assert {m["id"] for m in answers[-1].messages} == acked

    run(scenario(), timeout=120)


class Resilient:
    """A client that behaves as docs/protocol.md asks: on a closed socket it reconnects,
    joins again (retrying on ``unavailable``) and recovers what it missed from history."""

    def __init__(self, url: str, history_url: str, room: str, nick: str) -> None:
        self.url, self.history_url, self.room, self.nick = url, history_url, room, nick
        self.log = recovery.RoomLog()
        self.shown: list[str] = []  # ids shown to the user, live or recovered, in order
        self.live_ids: set[str] = set()
        self.live_duplicates = 0
        self.closes: list[int | None] = []
        self.client: Client | None = None

    async def connect(self) -> None:
        resume_from = self.log.newest
        while True:
            try:
                client = await Client.connect(self.url)
                # The same token on every connection: its retries are recognised as its own.
                await client.send(
                    type="join", room=self.room, nick=self.nick, client_token=nick_token(self.nick)
                )
                frame = await client.first(
                    lambda f: (
                        f["type"] == "error" or (f["type"] == "presence" and f["nick"] == self.nick)
                    ),
                    "join answer",
                    timeout=10,
                )
            except (OSError, AssertionError, WebSocketClosedError, StreamClosedError):
                await asyncio.sleep(0.3)
                continue
            if frame["type"] == "presence":
                break
            client.close()
            await asyncio.sleep(0.3)  # unavailable: the broker is not back yet
        self.client = client
        if resume_from is not None:
            missed = await recovery.recover(
                history_pages(self.history_url, self.room),
                self.log,
                resume_from,
                contract.section("protocol")["recovery_overlap_ms"],
                limit=50,
                recheck_ms=contract.section("protocol")["recovery_recheck_ms"],
            )
            self.shown += [m["id"] for m in missed]

    async def listen(self, stop: asyncio.Event) -> None:
        await self.connect()
        while not stop.is_set():
            assert self.client is not None
            try:
                frame = await self.client.read(timeout=0.2)
            except TimeoutError:
                continue
            if frame is None:
                self.closes.append(self.client.close_code)
                await self.connect()
                continue
            if frame["type"] == "message":
                # Delivered live twice is a gateway bug; live after recovery found it is not.
                if frame["id"] in self.live_ids:
                    self.live_duplicates += 1
                self.live_ids.add(frame["id"])
                if self.log.add(frame["id"]):
                    self.shown.append(frame["id"])

    async def say(self, text: str, cmid: str) -> dict[str, Any]:
        """Send until answered: an ack, or an ``unavailable`` error (returned as is); a
        closed socket is reconnected and the say resent with the same client_msg_id."""
        while True:
            if self.client is None or self.client.close_code is not None:
                await self.connect()
            assert self.client is not None
            try:
                await self.client.send(type="say", room=self.room, text=text, client_msg_id=cmid)
                return await self.client.first(
                    lambda f: (
                        f["type"] == "error" or (f["type"] == "ack" and f["client_msg_id"] == cmid)
                    ),
                    f"answer to {cmid}",
                    timeout=15,
                )
            except (AssertionError, WebSocketClosedError, StreamClosedError):
                self.client.close_code = self.client.close_code or -1
                continue


def test_broker_restart_loses_nothing_acked(tmp_path: Path, rabbitmq: Any) -> None:
    """Talk steadily while RabbitMQ restarts. Gateways and history reconnect and rebind by
    themselves, /readyz goes false then true, nothing said while the broker was down gets
    a false ack, every acked message is stored once, and a listener on the other gateway
    (told to resynchronise with 1012) ends up having shown every acked message exactly once."""

    async def scenario() -> None:
        async with rabbit_cluster(
            tmp_path, rabbitmq, limits__burst="1000", limits__rate_per_s="1000"
        ) as c:
            await eventually(lambda: all_ready(c), timeout=20)
            history_url = c.history_served.http
            talker = Resilient(c.gateway_served[0].ws, history_url, "steady", "talker")
            listener = Resilient(c.gateway_served[1].ws, history_url, "steady", "listener")
            await talker.connect()
            stop = asyncio.Event()
            listening = asyncio.create_task(listener.listen(stop))
            await eventually(lambda: listener.client is not None)

            acked: dict[str, str] = {}
            refused: list[str] = []
            seen_not_ready = False
            history_live_answers: set[bool] = set()
            counter = 0

            async def say_one() -> None:
                nonlocal counter
                counter += 1
                cmid = f"s{counter}"
                frame = await talker.say(f"n{counter}", cmid)
                if frame["type"] == "ack":
                    acked[cmid] = frame["id"]
                else:
                    assert frame["code"] == "unavailable", frame
                    refused.append(cmid)

            for _ in range(10):
                await say_one()
            restart = asyncio.get_running_loop().run_in_executor(None, rabbitmq.restart)
            while not restart.done():
                await say_one()
                if not await all_ready(c):
                    seen_not_ready = True
                page = await history_pages(history_url, "steady")(None, 1)
                history_live_answers.add(page.live)
                await asyncio.sleep(0.05)
            await restart
            await eventually(lambda: all_ready(c), timeout=30)
            assert seen_not_ready, "readyz never went false during the restart"
            assert False in history_live_answers, "history never said it was cut off"
            assert refused, "no say was refused while the broker was down"
            for _ in range(10):
                await say_one()
            # Retries (same client_msg_id) of everything refused now succeed.
            for cmid in list(refused):
                frame = await talker.say(f"n{cmid[1:]}", cmid)
                assert frame["type"] == "ack", frame
                acked[cmid] = frame["id"]

            await eventually(lambda: c.history.store.count("steady") >= len(acked), timeout=30)
            rows = c.history.store.after("steady", "", 10_000)
            stored_ids = {m.id for m in rows}
            missing = {cmid for cmid, mid in acked.items() if mid not in stored_ids}
            assert not missing, f"acked but not stored: {sorted(missing)}"
            assert len(rows) == len({m.text for m in rows}), "a message was stored twice"

            # The listener was told to resynchronise and has shown everything, once.
            await eventually(lambda: set(acked.values()) <= set(listener.shown), timeout=30)
            stop.set()
            await listening
            assert 1012 in listener.closes
            assert len(listener.shown) == len(set(listener.shown))
            assert listener.live_duplicates == 0

    run(scenario(), timeout=180)
