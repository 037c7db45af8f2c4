"""Every error code, the connection kept after each, 1008 for sustained abuse, origins."""

import json
from pathlib import Path

import pytest
import tornado.websocket
from support import Client, embedded, run
from tornado.httpclient import HTTPClientError, HTTPRequest


def test_each_error_code_keeps_the_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        # A big burst so the token bucket stays out of the way of this test.
        async with embedded(
            tmp_path,
            limits__burst="100",
            limits__max_rooms="2",
            limits__max_text_bytes="10",
            limits__max_errors="100",
        ) as chat:
            ada = await Client.connect(chat.served.ws)
            bob = await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            await bob.join("lobby", "bob")
            cases = [
                ("{nope", "bad_json"),
                (b"\x00binary", "bad_json"),
                ("[]", "bad_frame"),
                ('{"type":"shout"}', "unknown_type"),
                ('{"type":"join","room":"a b","nick":"x"}', "bad_room"),
                ('{"type":"join","room":"r","nick":"<x>"}', "bad_nick"),
                ('{"type":"say","room":"lobby","text":"","client_msg_id":"c"}', "bad_text"),
                (
                    '{"type":"say","room":"lobby","text":"' + "x" * 11 + '","client_msg_id":"c"}',
                    "text_too_long",
                ),
                (
                    '{"type":"say","room":"lobby","text":"ok","client_msg_id":"bad id"}',
                    "bad_client_msg_id",
                ),
                ('{"type":"say","room":"elsewhere","text":"ok","client_msg_id":"c"}', "not_joined"),
                ('{"type":"leave","room":"elsewhere"}', "not_joined"),
            ]
            for raw, code in cases:
                await ada.send_raw(raw)
                error = await ada.expect("error")
                assert error["code"] == code, raw
                assert isinstance(error["detail"], str) and error["detail"]
            await ada.join("second", "ada")
            await ada.send(type="join", room="third", nick="ada")
            assert (await ada.expect("error"))["code"] == "too_many_rooms"
            # Still connected and useful, and bob saw none of it.
            ack = await ada.say("lobby", "still here", "ok1")
            got = await bob.expect("message", id=ack["id"])
            assert got["text"] == "still here"
            assert not [f for f in bob.frames if f["type"] == "error"]

    run(scenario())


def test_flooding_is_rate_limited_then_closed_with_1008(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(
            tmp_path, limits__rate_per_s="1", limits__burst="3", limits__max_errors="5"
        ) as chat:
            flooder = await Client.connect(chat.served.ws)
            bystander = await Client.connect(chat.served.ws)
            await bystander.join("lobby", "calm")
            for i in range(20):
                try:
                    await flooder.send(type="join", room=f"r{i}", nick="f")
                except tornado.websocket.WebSocketClosedError:
                    break
            assert await flooder.wait_closed() == 1008
            codes = [f["code"] for f in flooder.frames if f["type"] == "error"]
            assert codes == ["rate_limited"] * 5
            joined = [f for f in flooder.frames if f["type"] == "presence"]
            assert len(joined) == 3  # the burst
            # The bystander was not disturbed.
            ack = await bystander.say("lobby", "fine", "b1")
            assert (await bystander.expect("message", id=ack["id"]))["text"] == "fine"

    run(scenario())


def test_oversize_frame_closes_with_1009(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, limits__max_frame_bytes="1024") as chat:
            client = await Client.connect(chat.served.ws)
            await client.send(type="say", room="lobby", text="x" * 2000, client_msg_id="c")
            assert await client.wait_closed() == 1009

    run(scenario())


def test_unavailable_broker_is_said_not_swallowed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada = await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            chat.hub.available = False
            await ada.send(type="say", room="lobby", text="lost?", client_msg_id="u1")
            error = await ada.expect("error")
            assert error["code"] == "unavailable"
            assert not [f for f in ada.frames if f["type"] == "ack"]
            chat.hub.available = True
            # The retry with the same client_msg_id now goes through, once.
            ack = await ada.say("lobby", "lost?", "u1")
            await ada.expect("message", id=ack["id"])
            assert chat.history.store.count("lobby") == 1 or await _stored(chat, 1)

    run(scenario())


def test_broker_outage_errors_are_not_abuse(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, limits__max_errors="3") as chat:
            ada = await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            chat.hub.available = False
            for i in range(6):
                await ada.send(type="say", room="lobby", text="x", client_msg_id=f"o{i}")
                assert (await ada.expect("error"))["code"] == "unavailable"
            chat.hub.available = True
            await ada.say("lobby", "still connected", "o9")

    run(scenario())


async def _stored(chat, n: int) -> bool:
    from support import eventually

    return await eventually(lambda: chat.history.store.count("lobby") == n)


@pytest.mark.parametrize(
    ("allowed", "origin", "accepted"),
    [
        ("", "http://evil.example", False),
        ("", "null", False),
        ("", "SAME", True),
        ("", None, True),  # not a browser: no Origin header
        ("https://chat.example.com", "https://chat.example.com", True),
        ("https://chat.example.com", "https://CHAT.example.com/", True),
        ("https://chat.example.com", "http://chat.example.com", False),
        ("https://chat.example.com", "SAME", True),  # its own origin always
    ],
)
def test_origin_check(tmp_path: Path, allowed: str, origin: str | None, accepted: bool) -> None:
    async def scenario() -> None:
        env = {"gateway__allowed_origins": allowed} if allowed else {}
        async with embedded(tmp_path, **env) as chat:
            sent = f"http://127.0.0.1:{chat.served.port}" if origin == "SAME" else origin
            headers = {"Origin": sent} if sent is not None else {}
            request = HTTPRequest(chat.served.ws, headers=headers, connect_timeout=5)
            if accepted:
                conn = await tornado.websocket.websocket_connect(request)
                assert json.loads(await conn.read_message())["type"] == "welcome"
                conn.close()
            else:
                with pytest.raises(HTTPClientError) as info:
                    await tornado.websocket.websocket_connect(request)
                assert info.value.code == 403

    run(scenario())
