"""chat: the basic two-client smoke flow — join, presence, say, ack, retry, history, leave."""

from __future__ import annotations

import json

from chatstack import contract

from ..client import Clients, presence_of
from ..http import request
from ..recovery import is_id
from ..report import FlowFailed, Step
from ..target import Target, unique_room
from .common import check_exactly_once, settle, wait_all_messages, wait_in_history

# Markup and non-ASCII on purpose: the server must pass text through untouched.
TEXT_A = 'hello <b>world</b> & "friends" — ✓'
TEXT_B = "hi ada 👋"


async def check_history_refusals(target: Target, room: str) -> None:
    """docs/protocol.md, History API: each bad parameter has its own code."""
    page_max = int(contract.section("protocol")["page_limit_max"])
    bad: list[tuple[str, str]] = [
        (target.messages_url("no room!"), "bad_room"),
        (target.messages_url(room, {"after": "not-an-id!"}), "bad_after"),
        (target.messages_url(room, {"after": "0" * 27}), "bad_after"),
        (target.messages_url(room, {"before": "not-an-id!"}), "bad_before"),
        (target.messages_url(room, {"before": "1", "after": "0"}), "bad_before"),
        (target.messages_url(room, {"limit": 0}), "bad_limit"),
        (target.messages_url(room, {"limit": page_max + 1}), "bad_limit"),
        (target.messages_url(room, {"limit": "many"}), "bad_limit"),
    ]
    for url, code in bad:
        answer = await request(target, url)
        try:
            error = json.loads(answer.body)["error"]
        except (ValueError, KeyError, TypeError):
            error = None
        if answer.code != 400 or not isinstance(error, dict) or error.get("code") != code:
            raise FlowFailed(
                f"GET {url}: expected 400 with error code {code}, "
                f"got {answer.code} {answer.body[:200]!r}"
            )
    answer = await request(target, target.messages_url(room), method="POST")
    if answer.code != 405:
        raise FlowFailed(f"POST {target.messages_url(room)}: expected 405, got {answer.code}")


async def run(target: Target, step: Step) -> None:
    room = unique_room("chat")
    async with Clients(target) as clients:
        a = await clients.connect("a")
        b = await clients.connect("b")
        # No instance names here: behind a load balancer they vary from run to run.
        step("two clients connected, welcome frames valid")

        since = a.mark()
        await a.join(room, "ada")
        await b.join(room, "bob")
        await a.wait_for(presence_of(room, "bob", "join"), "presence of bob joining", since=since)
        step("join: each client saw its own presence, a saw b join")

        cmid = a.new_client_msg_id()
        id_a = await a.say(room, TEXT_A, cmid)
        for client in (a, b):
            frame = await client.wait_message(room, id_a)
            if (
                frame.get("nick") != "ada"
                or frame.get("text") != TEXT_A
                or not isinstance(frame.get("ts"), int)
            ):
                raise FlowFailed(
                    f"{client.name}: message frame differs from what ada said: {frame!r}"
                )
        step("say: sender got ack, both got the message with nick, text and ts intact")

        id_b = await b.say(room, TEXT_B)
        await wait_all_messages(a, room, [id_b])
        await wait_all_messages(b, room, [id_b])
        # Order across gateways is only as good as their clocks: check the id format here;
        # recovery checks what the order is for.
        for message_id in (id_a, id_b):
            if not is_id(message_id):
                raise FlowFailed(f"message id {message_id!r} is not a ULID")
        if id_a == id_b:
            raise FlowFailed(f"two messages acked with the same id {id_a}")
        step("reply: both got it; ids are distinct ULIDs")

        again = await a.say(room, TEXT_A, cmid)
        if again != id_a:
            raise FlowFailed(f"retried say {cmid} acked with id {again}, first ack was {id_a}")
        await settle()
        for client in (a, b):
            check_exactly_once(client, room, {id_a, id_b})
        step("retry with the same client_msg_id: acked with the same id, delivered once")

        first = next(m for m in a.messages(room) if m["id"] == id_a)
        await wait_in_history(
            target,
            room,
            {
                id_a: {"nick": "ada", "text": TEXT_A, "ts": first["ts"]},
                id_b: {"nick": "bob", "text": TEXT_B},
            },
        )
        step("history: both messages stored once, in id order, fields as delivered")

        await check_history_refusals(target, room)
        step(
            "history API: bad room, after and limit refused with 400 and their code, POST with 405"
        )

        since = a.mark()
        await b.leave(room)
        await a.wait_for(presence_of(room, "bob", "leave"), "presence of bob leaving", since=since)
        for client in (a, b):
            client.check_healthy()
            if client.errors():
                raise FlowFailed(f"{client.name}: unexpected error frame {client.errors()[0]!r}")
        step("leave: a saw b leave; no error frames, both connections open")
