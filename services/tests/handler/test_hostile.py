"""Hostile clients against the real gateway (issue 9): each test reproduces an attack and
asserts the bound that stops it, on counts and state rather than on timings."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import tornado.websocket
from rawws import PING, RawWebSocket
from support import Client, embedded, eventually, get, recording_metrics, run
from tornado.httpclient import HTTPRequest

from chatstack import contract

HEADERS = contract.section("proxy")["headers"]


def _handler_of(chat: Any, conn: str) -> Any:
    return next(h for h in chat.gateway.sockets if h.session and h.session.conn == conn)


def _unsent(handler: Any) -> int:
    stream = handler.ws_connection.stream if handler.ws_connection else None
    if stream is None:
        return 0
    return int(stream._total_write_index - stream._total_write_done_index)


# --- 1. clients that never read --------------------------------------------------------------


def test_a_member_that_never_reads_is_closed_with_1013_and_its_backlog_stays_bounded(
    tmp_path: Path,
) -> None:
    bound = 64 * 1024
    text = "x" * 1900

    async def scenario() -> None:
        metrics = recording_metrics()
        async with embedded(
            tmp_path,
            metrics=metrics,
            limits__max_unsent_bytes=str(bound),
            limits__rate_per_s="100000",
            limits__burst="100000",
        ) as chat:
            port = chat.served.port

            def slow_join() -> tuple[RawWebSocket, str]:
                raw = RawWebSocket.connect("127.0.0.1", port, recv_buffer=4096)
                conn = raw.recv_json()["conn"]
                raw.send_json(type="join", room="busy", nick="sleepy")
                while raw.recv_json()["type"] != "presence":
                    pass
                return raw, conn

            slow, conn = await asyncio.to_thread(slow_join)
            handler = _handler_of(chat, conn)
            talker = await Client.connect(chat.served.ws)
            await talker.join("busy", "talker")
            peak = 0
            sent = 0
            # Far more than kernel buffers hold (a few MB): the gateway must cut it off.
            while handler.session is not None and not handler.session.closed and sent < 4000:
                for _ in range(50):
                    await talker.send(type="say", room="busy", text=text, client_msg_id=f"m{sent}")
                    sent += 1
                await talker.expect("ack", client_msg_id=f"m{sent - 1}", timeout=20)
                peak = max(peak, _unsent(handler))
            assert handler.session.closed, f"still open after {sent} messages of 2 KB"
            assert metrics.counts["gateway.closed.slow_reader"] == 1
            # Checked after every write: over by at most one frame, plus the close frame.
            assert peak <= bound + len(text) + 200, peak
            # The member learns why once it reads: everything queued, then 1013.
            code, frames, _ = await asyncio.to_thread(slow.read_until_close)
            slow.close()
            assert code == contract.section("protocol")["close_try_again_later"] == 1013
            assert frames and all(f["type"] in ("message", "presence", "members") for f in frames)
            # The talker was not affected.
            ack = await talker.say("busy", "still fine", "after")
            assert ack["type"] == "ack"

    run(scenario())


def test_a_client_that_kept_to_the_rate_is_not_refused_after_a_server_stall(
    tmp_path: Path,
) -> None:
    """Frames sent while the server's loop was stalled arrive at once afterwards; the
    client kept to 1.5 frames/s under a 2/s limit, so none may be refused (and no 1008)."""

    async def scenario() -> None:
        async with embedded(
            tmp_path, limits__rate_per_s="2", limits__burst="2", limits__max_errors="3"
        ) as chat:
            port = chat.served.port

            def connect() -> RawWebSocket:
                raw = RawWebSocket.connect("127.0.0.1", port)
                raw.recv_json()
                raw.send_json(type="join", room="calm", nick="steady")
                while raw.recv_json()["type"] != "presence":
                    pass
                return raw

            raw = await asyncio.to_thread(connect)
            await asyncio.sleep(1.5)  # the bucket is full again

            def steady_says() -> None:
                for n in range(6):
                    raw.send_json(type="say", room="calm", text=f"s{n}", client_msg_id=f"s{n}")
                    time.sleep(0.66)

            sending = asyncio.ensure_future(asyncio.to_thread(steady_says))
            await asyncio.sleep(0.05)
            time.sleep(4.5)  # the server's loop stalls while the client keeps sending
            await sending

            def answers() -> list[dict[str, Any]]:
                got: list[dict[str, Any]] = []
                while len([f for f in got if f["type"] in ("ack", "error")]) < 6:
                    got.append(raw.recv_json())
                return got

            got = await asyncio.to_thread(answers)
            raw.close()
            assert [f for f in got if f["type"] == "error"] == []
            assert sorted(f["client_msg_id"] for f in got if f["type"] == "ack") == [
                f"s{n}" for n in range(6)
            ]
            assert chat.gateway.loopwatch.stalled_s >= 4

    run(scenario())


def test_closing_many_sockets_lets_the_loop_run_in_between(tmp_path: Path) -> None:
    """Drain closes sessions a batch per loop iteration: other callbacks run meanwhile."""

    async def scenario() -> None:
        async with embedded(
            tmp_path,
            gateway__max_connections_per_address="1000",
            gateway__presence_coalesce_ms="0",  # 50 joins in a row: no window to wait for
        ) as chat:
            clients = [await Client.connect(chat.served.ws) for _ in range(250)]
            for n, client in enumerate(clients[:50]):
                await client.join("crowd", f"n{n}")
            ticks = 0

            def tick() -> None:
                nonlocal ticks
                ticks += 1
                if chat.gateway.sessions:
                    asyncio.get_running_loop().call_soon(tick)

            asyncio.get_running_loop().call_soon(tick)
            await chat.gateway.close_all(1012, "test")
            assert not chat.gateway.sessions
            # 250 sessions, 100 per batch: the loop ran between the batches.
            assert ticks >= 2
            codes = await asyncio.gather(*(c.wait_closed() for c in clients))
            assert set(codes) == {1012}

    run(scenario())


# --- 3. control frames ---------------------------------------------------------------------


def test_a_ping_flood_costs_tokens_and_is_closed_with_1008(tmp_path: Path) -> None:
    async def scenario() -> None:
        metrics = recording_metrics()
        async with embedded(
            tmp_path, metrics=metrics, limits__burst="10", limits__max_errors="20"
        ) as chat:
            bystander = await Client.connect(chat.served.ws)
            await bystander.join("lobby", "calm")
            port = chat.served.port

            def flood() -> tuple[int | None, int, int]:
                raw = RawWebSocket.connect("127.0.0.1", port)
                raw.recv_json()
                sent = 0
                try:
                    for _ in range(5000):
                        raw.send_frame(PING, b"x")
                        sent += 1
                except OSError:
                    pass  # closed by the server mid-flood
                code, _, pongs = raw.read_until_close()
                raw.close()
                return code, pongs, sent

            code, pongs, sent = await asyncio.to_thread(flood)
            assert code == 1008, (code, pongs, sent)
            # burst + max_errors pings answered at most (plus what was in flight).
            assert pongs < 200, pongs
            assert metrics.counts["gateway.closed.policy"] == 1
            ack = await bystander.say("lobby", "unbothered", "b1")
            assert ack["type"] == "ack"

    run(scenario())


# --- 4. presence amplification and connections per address -----------------------------------


def test_joins_have_their_own_budget(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(
            tmp_path, limits__join_burst="3", limits__join_rate_per_s="0.1", limits__burst="50"
        ) as chat:
            client = await Client.connect(chat.served.ws)
            for n in range(6):
                await client.send(type="join", room="r", nick=f"n{n}")
            await client.send(type="say", room="r", text="says are not joins", client_msg_id="x")
            await client.expect("ack", client_msg_id="x")
            errors = [f["code"] for f in client.frames if f["type"] == "error"]
            assert errors == ["join_rate_limited"] * 3

    run(scenario())


def test_a_rejoin_flood_is_coalesced_for_the_room(tmp_path: Path) -> None:
    """10 connections switching between two nicks 20 times: 400 presence events. A member
    gets at most one frame per nick per window, and the last state of every nick."""

    async def scenario() -> None:
        metrics = recording_metrics()
        async with embedded(
            tmp_path,
            metrics=metrics,
            gateway__presence_coalesce_ms="1000",
            limits__join_burst="1000",
            limits__burst="1000",
            limits__rate_per_s="1000",
        ) as chat:
            watcher = await Client.connect(chat.served.ws)
            await watcher.join("hot", "watcher")
            flappers = [await Client.connect(chat.served.ws) for _ in range(10)]
            for n, flapper in enumerate(flappers):
                for _ in range(20):
                    await flapper.send(type="join", room="hot", nick=f"a{n}")
                    await flapper.send(type="join", room="hot", nick=f"b{n}")
            events = 10 * (1 + 19 * 2 + 1)  # first join, 19 x (leave a + join b ...), ...
            last = {f"b{n}": "join" for n in range(10)} | {f"a{n}": "leave" for n in range(10)}

            def settled() -> bool:
                seen: dict[str, str] = {}
                for frame in watcher.frames:
                    if frame["type"] == "presence" and frame["nick"] != "watcher":
                        seen[frame["nick"]] = frame["event"]
                return seen == last

            async def read_until_settled() -> bool:
                while not settled():
                    await watcher.read(timeout=10)
                return True

            await asyncio.wait_for(read_until_settled(), 30)
            presence = [f for f in watcher.frames if f["type"] == "presence"]
            assert len(presence) <= events // 2, (len(presence), events)
            assert metrics.counts["gateway.presence.coalesced"] > 0

    run(scenario())


def test_connections_per_client_address_are_limited(tmp_path: Path) -> None:
    async def scenario() -> None:
        metrics = recording_metrics()
        async with embedded(
            tmp_path,
            metrics=metrics,
            gateway__max_connections_per_address="3",
        ) as chat:
            clients = [await Client.connect(chat.served.ws) for _ in range(3)]
            try:
                await Client.connect(chat.served.ws)
                raise AssertionError("a 4th websocket from one address was accepted")
            except Exception as exc:  # tornado raises HTTPClientError for a non-101 answer
                assert getattr(exc, "code", None) == 429, exc
            assert metrics.counts["gateway.refused.per_address"] == 1
            clients[0].close()
            await eventually(lambda: chat.gateway.per_address.get("127.0.0.1") == 2)
            again = await Client.connect(chat.served.ws)
            again.close()

    run(scenario())


# --- 9. DNS rebinding, 10. headers on every response ----------------------------------------


def test_the_embedded_server_answers_only_its_own_host_names(tmp_path: Path) -> None:
    async def scenario() -> None:
        metrics = recording_metrics()
        async with embedded(tmp_path, metrics=metrics) as chat:
            port = chat.served.port
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
                response = await get(f"{chat.served.http}/", Host=host)
                assert response.code == 200, host
            rebound = f"evil.example:{port}"
            for path in ("/", "/healthz", "/api/rooms/lobby/messages"):
                response = await get(f"{chat.served.http}{path}", Host=rebound)
                assert response.code == 421, (path, response.code)
            # The rebinding attack proper: a websocket with a matching Origin.
            request = HTTPRequest(
                chat.served.ws, headers={"Host": rebound, "Origin": f"http://{rebound}"}
            )
            try:
                await tornado.websocket.websocket_connect(request)
                raise AssertionError("handshake with a foreign Host succeeded")
            except Exception as exc:
                assert getattr(exc, "code", None) == 421, exc
            assert metrics.counts["http.refused.host"] == 4

    run(scenario())


def test_an_allowed_host_name_is_served(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, http__allowed_hosts="chat.example.com") as chat:
            response = await get(f"{chat.served.http}/", Host="chat.example.com")
            assert response.code == 200
            response = await get(f"{chat.served.http}/", Host="other.example.com")
            assert response.code == 421

    run(scenario())


def test_every_response_has_the_security_headers_and_no_server_banner(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            base = chat.served.http
            for path, status in (
                ("/", 200),
                ("/chat.js", 200),
                ("/healthz", 200),
                ("/readyz", 200),
                ("/api/rooms/lobby/messages", 200),
                ("/no-such-file", 404),
                ("/ws", 400),  # not an upgrade
            ):
                response = await get(f"{base}{path}")
                assert response.code == status, (path, response.code)
                assert "Server" not in response.headers, (path, response.headers["Server"])
                for name, value in HEADERS.items():
                    assert response.headers.get(name) == value, (path, name)
            # The websocket handshake (101) too.
            conn = await tornado.websocket.websocket_connect(chat.served.ws)
            assert "Server" not in conn.headers
            for name, value in HEADERS.items():
                assert conn.headers.get(name) == value, name
            welcome = json.loads(await conn.read_message())
            assert welcome["type"] == "welcome"
            conn.close()

    run(scenario())
