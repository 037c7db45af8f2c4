"""The peer of the comparison: a python-socketio server on aiohttp whose instances share
rooms through RabbitMQ (``socketio.AsyncAioPikaManager``), the usual Python way to run
several socket.io servers behind a load balancer.

Runs in the bench's own venv (``make bench-tools``: tools/chatbench/peer-requirements.txt),
never the services' environment:

    .tools/bench/bin/python tools/chatbench/peer_server.py --port P --amqp-url URL

Events mirror chatstack's protocol: ``join {room, nick}`` enters the room; ``say {room, text,
client_msg_id}`` emits ``message`` to the room through RabbitMQ and answers the say's ack
(socket.io's callback) with ``{client_msg_id, id}`` once the publish returned.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import socketio  # type: ignore[import-not-found]
from aiohttp import web  # type: ignore[import-not-found]


def make_app(amqp_url: str, instance: str) -> Any:
    manager = socketio.AsyncAioPikaManager(amqp_url)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    app = web.Application()
    sio.attach(app)
    counter = itertools.count()
    nicks: dict[tuple[str, str], str] = {}

    @sio.event  # type: ignore[untyped-decorator]
    async def join(sid: str, data: dict[str, str]) -> dict[str, str]:
        await sio.enter_room(sid, data["room"])
        nicks[sid, data["room"]] = data["nick"]
        return {"instance": instance}

    @sio.event  # type: ignore[untyped-decorator]
    async def say(sid: str, data: dict[str, str]) -> dict[str, str]:
        room = data["room"]
        message_id = f"{instance}-{next(counter)}"
        await sio.emit(
            "message",
            {
                "room": room,
                "id": message_id,
                "nick": nicks.get((sid, room), ""),
                "text": data["text"],
            },
            room=room,
        )
        return {"client_msg_id": data["client_msg_id"], "id": message_id}

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str) -> None:
        for key in [k for k in nicks if k[0] == sid]:
            del nicks[key]

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--instance", default="peer")
    args = parser.parse_args()
    web.run_app(
        make_app(args.amqp_url, args.instance),
        host="127.0.0.1",
        port=args.port,
        print=None,
    )


if __name__ == "__main__":
    main()
