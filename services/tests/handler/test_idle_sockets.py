"""Idle websockets: the gateway's pings (gateway/keepalive.py) and what an idle joined
socket keeps alive (issue 10: tens of thousands of them per gateway)."""

from __future__ import annotations

import asyncio
import gc
import struct
from pathlib import Path

from rawws import CLOSE, PING, PONG, TEXT, RawWebSocket, close_code
from support import embedded, eventually, run
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection

from chatstack.gateway.handler import ChatSocketHandler

FAST_PINGS = {"gateway__ping_interval_s": "0.3", "gateway__ping_timeout_s": "0.3"}


def test_a_client_answering_pings_stays_and_a_silent_one_is_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, **FAST_PINGS) as chat:
            port = chat.served.port

            def answering() -> int:
                raw = RawWebSocket.connect("127.0.0.1", port)
                raw.recv_json()  # welcome
                pings = 0
                while pings < 4:
                    opcode, payload = raw.recv_frame()
                    assert opcode != CLOSE, f"closed with {close_code(payload)}"
                    if opcode == PING:
                        pings += 1
                        raw.send_frame(PONG, payload)
                # Still served after four intervals of pings.
                raw.send_json(type="join", room="r", nick="awake")
                while raw.recv_json()["type"] != "presence":
                    pass
                raw.close()
                return pings

            def silent() -> tuple[int, int | None, bytes]:
                raw = RawWebSocket.connect("127.0.0.1", port)
                pings = 0
                while True:
                    opcode, payload = raw.recv_frame()
                    if opcode == PING:
                        pings += 1  # and no pong
                    elif opcode == CLOSE:
                        raw.close()
                        return pings, close_code(payload), payload[2:]
                    else:
                        assert opcode == TEXT

            pings, (silent_pings, code, reason) = await asyncio.gather(
                asyncio.to_thread(answering), asyncio.to_thread(silent)
            )
            assert pings == 4
            assert silent_pings == 1
            assert (code, reason) == (1000, b"ping timed out")
            await eventually(lambda: len(chat.gateway.keepalive) == 0)

    run(scenario())


def test_an_idle_joined_socket_keeps_one_task_and_no_handshake_objects(
    tmp_path: Path,
) -> None:
    """Per idle socket: tornado's receive loop (one task) and the session; no ping task of
    its own, and none of the handshake's HTTP/1 connection objects."""

    def live(kind: type) -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is kind)

    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            port = chat.served.port
            tasks_before = len(asyncio.all_tasks())
            http_before = live(HTTP1Connection), live(HTTP1ServerConnection)

            def idle(n: int) -> RawWebSocket:
                raw = RawWebSocket.connect("127.0.0.1", port)
                raw.recv_json()
                raw.send_json(type="join", room="idle", nick=f"n{n}")
                while True:
                    frame = raw.recv_json()
                    if frame["type"] == "presence" and frame["nick"] == f"n{n}":
                        return raw

            sockets = await asyncio.gather(*(asyncio.to_thread(idle, n) for n in range(12)))
            assert live(ChatSocketHandler) == 12
            await eventually(lambda: len(asyncio.all_tasks()) == tasks_before + 12)
            assert (live(HTTP1Connection), live(HTTP1ServerConnection)) == http_before
            assert len(chat.gateway.keepalive) == 12
            for raw in sockets:
                raw.send_frame(CLOSE, struct.pack("!H", 1000))
                raw.close()
            await eventually(lambda: len(chat.gateway.keepalive) == 0)

    run(scenario())
