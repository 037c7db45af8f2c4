"""A process holding idle joined websockets for the idle case, so that their number is not
bounded by one process's descriptor limit (a container may cap it and forbid raising it).

    python -m chatbench.holder HOST PORT FIRST COUNT

Opens websockets FIRST .. FIRST+COUNT-1 (source address and room from the index, as the
idle case numbers them), joins each to its room, prints one JSON line
``{"joined": N, "failed": N, "error": "..."}`` and keeps them open, answering pings, until
its stdin closes; then closes them and exits.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from .wsclient import WsProtocol, connect

BATCH = 200  # handshakes in flight at once


def source_address(n: int) -> str:
    """The n-th loopback source address, 50 connections each (under every per-address
    limit of nginx and the gateways)."""
    slot = n // 50
    return f"127.1.{slot // 250}.{slot % 250 + 1}"


def idle_join(n: int) -> bytes:
    return json.dumps(
        {"type": "join", "room": f"idle-{n // 10}", "nick": f"i{n}"}
    ).encode()


async def hold(host: str, port: int, first: int, count: int) -> None:
    held: list[WsProtocol] = []
    failed = 0
    error = ""

    def ignore(_payload: bytes) -> None:
        return None

    async def one(n: int) -> WsProtocol:
        protocol = await connect(host, port, ignore, source=source_address(n))
        protocol.send_text(idle_join(n))
        return protocol

    for start in range(first, first + count, BATCH):
        results = await asyncio.gather(
            *(one(n) for n in range(start, min(first + count, start + BATCH))),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                failed += 1
                error = error or f"{type(result).__name__}: {result}"
            else:
                held.append(result)
        if failed:
            break
    print(
        json.dumps({"joined": len(held), "failed": failed, "error": error}), flush=True
    )
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    for protocol in held:
        if protocol.transport is not None:
            protocol.transport.close()
    await asyncio.sleep(0.5)


def main(argv: list[str]) -> int:
    host, port, first, count = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(hold(host, port, first, count))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
