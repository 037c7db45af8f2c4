"""The websocket protocol at the tornado level, on the in-memory broker."""

import asyncio
from pathlib import Path

from support import Client, embedded, eventually, get, get_json, history_pages, run

from chatstack import contract
from chatstack.probe import recovery


def test_join_say_ack_message_presence(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada = await Client.connect(chat.served.ws)
            assert ada.welcome["instance"] == chat.gateway.instance
            assert ada.welcome["limits"] == chat.gateway.limits.announced()
            assert ada.welcome["conn"].startswith("c")
            bob = await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            await bob.join("lobby", "bob")
            await ada.expect("presence", room="lobby", nick="bob", event="join")

            ack = await ada.say("lobby", "hello <b>bob</b>", "m1")
            got = await bob.expect("message", room="lobby")
            assert got == {
                "type": "message", "room": "lobby", "id": ack["id"], "nick": "ada",
                "text": "hello <b>bob</b>", "ts": got["ts"],
            }  # fmt: skip
            mine = await ada.expect("message", id=ack["id"])
            assert mine["text"] == "hello <b>bob</b>"

            await bob.send(type="leave", room="lobby")
            await bob.expect("presence", room="lobby", nick="bob", event="leave")
            await ada.expect("presence", room="lobby", nick="bob", event="leave")
            await ada.say("lobby", "anyone?", "m2")
            await bob.send(type="say", room="lobby", text="x", client_msg_id="b1")
            assert (await bob.expect("error"))["code"] == "not_joined"
            assert [m["text"] for m in bob.messages()] == ["hello <b>bob</b>"]

            bob.close()
            ada.close()

    run(scenario())


def test_disconnect_tells_the_room(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada, bob = await Client.connect(chat.served.ws), await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            await bob.join("lobby", "bob")
            bob.close()
            await ada.expect("presence", room="lobby", nick="bob", event="leave")
            ada.close()

    run(scenario())


def test_rejoin_with_another_nick(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada, bob = await Client.connect(chat.served.ws), await Client.connect(chat.served.ws)
            await bob.join("lobby", "bob")
            await ada.join("lobby", "ada")
            await ada.join("lobby", "ada")  # idempotent: answered, room not told twice
            await ada.join("lobby", "ada2")
            await bob.expect("presence", nick="ada", event="leave")
            await bob.expect("presence", nick="ada2", event="join")
            joins = [f for f in bob.frames if f["type"] == "presence" and f["nick"] == "ada"]
            assert [f["event"] for f in joins] == ["join", "leave"]
            ack = await ada.say("lobby", "now ada2", "x1")
            assert (await bob.expect("message", id=ack["id"]))["nick"] == "ada2"

    run(scenario())


def test_retried_say_is_stored_and_delivered_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada, bob = await Client.connect(chat.served.ws), await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            await bob.join("lobby", "bob")
            # Sent twice back to back: the second arrives while the first is in flight.
            await ada.send(type="say", room="lobby", text="once", client_msg_id="dup")
            await ada.send(type="say", room="lobby", text="once", client_msg_id="dup")
            first = await ada.expect("ack", client_msg_id="dup")
            second = await ada.expect("ack", client_msg_id="dup")
            assert first["id"] == second["id"]
            # And again later, after it settled.
            third = await ada.say("lobby", "once", "dup")
            assert third["id"] == first["id"]
            await bob.say("lobby", "marker", "b-marker")  # everything before it has arrived
            await bob.expect("message", text="marker")
            assert [m["text"] for m in bob.messages()] == ["once", "marker"]
            page = await get_json(f"{chat.served.http}/api/rooms/lobby/messages")
            assert [m["text"] for m in page["messages"]] == ["once", "marker"]
            assert page["messages"][0]["id"] == first["id"]

    run(scenario())


def test_history_api(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada = await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            acks = [await ada.say("lobby", f"m{i}", f"c{i}") for i in range(5)]
            ids = [a["id"] for a in acks]
            base = f"{chat.served.http}/api/rooms/lobby/messages"

            async def page(query: str) -> list[str]:
                data = await get_json(base + query)
                assert data["room"] == "lobby"
                assert data["live"] is True
                assert all(set(m) == {"id", "room", "nick", "text", "ts"} for m in data["messages"])
                return [m["id"] for m in data["messages"]]

            assert await page("") == ids
            assert await page("?limit=2") == ids[-2:]  # the newest, oldest first
            assert await page(f"?after={ids[1]}&limit=2") == ids[2:4]
            assert await page(f"?after={ids[1].lower()}") == ids[2:]
            assert await page(f"?after={ids[-1]}") == []
            # Older pages: the newest `limit` before the cursor, oldest first.
            assert await page(f"?before={ids[3]}&limit=2") == ids[1:3]
            assert await page(f"?before={ids[1].lower()}") == ids[:1]
            assert await page(f"?before={ids[0]}") == []
            assert await page(f"?before={ids[-1]}&limit=500") == ids[:-1]
            assert (await get_json(f"{chat.served.http}/api/rooms/empty/messages"))[
                "messages"
            ] == []
            for query, code in [
                ("?limit=0", "bad_limit"),
                ("?limit=501", "bad_limit"),
                ("?limit=x", "bad_limit"),
                ("?after=not-an-id", "bad_after"),
                ("?after=" + "0" * 27, "bad_after"),
                ("?before=not-an-id", "bad_before"),
                ("?before=", "bad_before"),
                ("?before=" + "0" * 27, "bad_before"),
                (f"?before={ids[3]}&after={ids[0]}", "bad_before"),
            ]:
                response = await get(base + query)
                assert response.code == 400, query
                assert b'"code": "%s"' % code.encode() in response.body
            bad_room = await get(f"{chat.served.http}/api/rooms/no%20spaces/messages")
            assert bad_room.code == 400
            assert b"bad_room" in bad_room.body

    run(scenario())


def test_history_api_says_when_it_is_cut_off_from_the_broker(tmp_path: Path) -> None:
    """Stored messages are still served, marked ``live: false``: a recovering client must
    read again later (docs/protocol.md, "Recovery")."""

    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            ada = await Client.connect(chat.served.ws)
            await ada.join("lobby", "ada")
            ack = await ada.say("lobby", "kept", "k1")
            url = f"{chat.served.http}/api/rooms/lobby/messages"
            await eventually(lambda: chat.history.store.count("lobby") == 1)
            await chat.history.broker.close()
            data = await get_json(url)
            assert data["live"] is False
            assert [m["id"] for m in data["messages"]] == [ack["id"]]

    run(scenario())


def test_health_and_readiness(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            assert (await get_json(f"{chat.served.http}/healthz"))["status"] == "ok"
            assert (await get_json(f"{chat.served.http}/readyz"))["status"] == "ready"
            await chat.history.close()  # store closed, broker endpoint gone
            response = await get(f"{chat.served.http}/readyz")
            assert response.code == 503
            assert b"store not open" in response.body

    run(scenario())


def test_static_client_and_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            response = await get(f"{chat.served.http}/")
            assert response.code == 200
            assert b"<html" in response.body.lower()
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            for path in ("/", "/api/rooms/lobby/messages", "/healthz", "/readyz"):
                answer = await get(chat.served.http + path, Origin="https://evil.example")
                assert "Access-Control-Allow-Origin" not in answer.headers, path

    run(scenario())


def test_recovery_waits_for_history_that_reconnects_late(tmp_path: Path) -> None:
    """A client comes back while history is still cut off from the broker (after a broker
    restart it may reconnect later than the gateways): what was acked meanwhile is queued
    for history, not stored. One read loses it; rereading until history answers live twice
    (docs/protocol.md, "Recovery") gets every message, once."""
    overlap_ms = contract.section("protocol")["recovery_overlap_ms"]

    async def scenario() -> None:
        async with embedded(tmp_path) as chat:
            talker = await Client.connect(chat.served.ws)
            await talker.join("lobby", "talker")
            reader = await Client.connect(chat.served.ws)
            await reader.join("lobby", "reader")
            first = await talker.say("lobby", "before", "b0")
            await reader.expect("message", id=first["id"])
            log = recovery.RoomLog()
            log.add(first["id"])
            resume_from = log.newest
            reader.close()

            await chat.history.broker.close()
            away = {(await talker.say("lobby", f"away {i}", f"a{i}"))["id"] for i in range(3)}
            back = await Client.connect(chat.served.ws)
            await back.join("lobby", "reader")
            pages = history_pages(chat.served.http, "lobby")

            once = await recovery.recover(pages, recovery.RoomLog(), resume_from, overlap_ms, 50)
            assert {m["id"] for m in once} == {first["id"]}, "history had them already?"

            recovering = asyncio.create_task(
                recovery.recover(pages, log, resume_from, overlap_ms, 50, recheck_ms=100)
            )
            await asyncio.sleep(0.5)
            assert not recovering.done(), "recovery ended while history was cut off"
            await chat.history.broker.start()
            found = await asyncio.wait_for(recovering, 10)
            assert sorted(m["id"] for m in found) == sorted(away)

    run(scenario())
