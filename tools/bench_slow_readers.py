#!/usr/bin/env python3
"""Benchmark (not a test): issue 9's "clients that never read" against `chatstack serve`.

200 members of one room never read (a 4 KB receive buffer each), 20 publishers say 2 KB
messages at 4.5/s each (inside the rate limit) for --seconds. Prints the server's peak RSS,
the slowest /healthz answer, the server's own loop stalls (gateway.loop.stall_ms over
statsd), how many non-readers were closed with 1013, and whether any publisher was
refused or closed. Before the fix the server grew from 35 MB to 1.5 GB in
45 s and froze for ~15 s when the pings timed out.

    .venv/bin/python tools/bench_slow_readers.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import tornado.websocket
from chatstack.devstack.ports import free_port
from chatstack.devstack.services import command

PUBLISHERS, RATE, TEXT = 20, 4.5, "x" * 2000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def non_reader(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    payload = json.dumps({"type": "join", "room": "busy", "nick": "sleepy"}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


async def publisher(port: int, n: int, until: float, refused: list[str]) -> None:
    conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
    await conn.write_message(
        json.dumps({"type": "join", "room": "busy", "nick": f"p{n}"})
    )

    async def drain() -> None:
        while (raw := await conn.read_message()) is not None:
            frame = json.loads(raw)
            if frame["type"] == "error":
                refused.append(frame["code"])
        if time.monotonic() < until:
            refused.append(f"closed {conn.close_code}")

    reader = asyncio.ensure_future(drain())
    count = 0
    while time.monotonic() < until:
        count += 1
        await conn.write_message(
            json.dumps(
                {
                    "type": "say",
                    "room": "busy",
                    "text": TEXT,
                    "client_msg_id": f"{n}-{count}",
                }
            )
        )
        await asyncio.sleep(1 / RATE)
    conn.close()
    await reader


async def bench(
    port: int, pid: int, seconds: float, members_n: int, statsd: socket.socket
) -> dict[str, object]:
    stalls: list[tuple[float, float]] = []  # (seconds since start, stall ms)
    began = time.monotonic()

    async def collect() -> None:
        loop = asyncio.get_running_loop()
        statsd.setblocking(False)
        while True:
            packet = (await loop.sock_recv(statsd, 65536)).decode()
            for line in packet.splitlines():
                if line.startswith("chatstack.gateway.loop.stall_ms:"):
                    ms = float(line.split(":")[1].split("|")[0])
                    stalls.append((round(time.monotonic() - began, 1), ms))

    collector = asyncio.ensure_future(collect())
    members = [non_reader(port) for _ in range(members_n)]
    await asyncio.sleep(1)
    until = time.monotonic() + seconds
    refused: list[str] = []
    peak_rss, slowest = rss_mb(pid), 0.0
    tasks = [
        asyncio.ensure_future(publisher(port, n, until, refused))
        for n in range(PUBLISHERS)
    ]
    client = tornado.httpclient.AsyncHTTPClient()
    while time.monotonic() < until:
        started = time.monotonic()
        await client.fetch(f"http://127.0.0.1:{port}/healthz", request_timeout=30)
        slowest = max(slowest, time.monotonic() - started)
        peak_rss = max(peak_rss, rss_mb(pid))
        await asyncio.sleep(0.2)
    await asyncio.gather(*tasks)
    for sock in members:
        sock.close()
    collector.cancel()
    return {
        "seconds": seconds,
        "server_loop_stalls_over_50ms": len(stalls),
        "server_longest_stall_ms": round(max((ms for _, ms in stalls), default=0.0), 1),
        "stalls_over_100ms_at_s": [at for at, ms in stalls if ms > 100],
        "non_readers": members_n,
        "peak_rss_mb": round(peak_rss, 1),
        "slowest_healthz_ms": round(slowest * 1000, 1),
        "publisher_refusals_or_closes": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--members", type=int, default=200, help="members that never read"
    )
    args = parser.parse_args()
    port = free_port()
    # The server's own measure of loop stalls (gateway.loop.stall_ms) arrives over statsd.
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    statsd.bind(("127.0.0.1", 0))
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
        env["CHATSTACK_HISTORY__DATABASE"] = f"{tmp}/h.sqlite3"
        env["CHATSTACK_GATEWAY__MAX_CONNECTIONS_PER_ADDRESS"] = "1000"
        env["CHATSTACK_STATSD__HOST"] = "127.0.0.1"
        env["CHATSTACK_STATSD__PORT"] = str(statsd.getsockname()[1])
        with open(f"{tmp}/serve.log", "wb") as log:
            proc = subprocess.Popen(
                [*command("serve"), "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            result = asyncio.run(
                bench(port, proc.pid, args.seconds, args.members, statsd)
            )
            events = Path(f"{tmp}/serve.log").read_text(errors="replace")
            result["slow_reader_closes_logged"] = events.count("ws.slow_reader_close")
            print(json.dumps(result, indent=2))
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
