"""Nobody can suppress someone else's say by reusing its (room, nick, client_msg_id): the
dedupe key holds the hash of the sender's secret client_token (docs/protocol.md). Before,
the attacker's say was acked with the victim's id and its text dropped, and a victim saying
after the attacker was acked with the attacker's message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import Client, cluster, eventually, run

from chatstack.broker.memory import MemoryHub
from chatstack.history.store import HistoryStore

VICTIM = "victim-secret-token-0123456789"
ATTACKER = "attacker-own-token-0123456789"


def test_a_reused_client_msg_id_never_suppresses_the_victim(tmp_path: Path) -> None:
    async def scenario() -> None:
        hub = MemoryHub()
        async with cluster(tmp_path, [hub.gateway(), hub.gateway()], hub.history()) as c:
            one, two = c.gateway_served
            watcher = await Client.connect(two.ws)
            await watcher.join("lobby", "watcher")
            victim = await Client.connect(one.ws)
            await victim.join("lobby", "ada", VICTIM)
            await watcher.expect("presence", nick="ada", event="join")  # gw-2 saw it
            attacker = await Client.connect(two.ws)
            await attacker.send(type="join", room="lobby", nick="ada", client_token=ATTACKER)
            assert (await attacker.expect("error"))["code"] == "nick_taken"
            real = await victim.say("lobby", "the real one", "k1")
            victim.close()
            # Nicks are not owned (no login): once the victim is gone, anyone may take it.
            await attacker.join_when_free("lobby", "ada", ATTACKER)

            # The victim said k1 first: the attacker's copy of its id is a message of its own.
            fake = await attacker.say("lobby", "forged", "k1")
            assert fake["id"] != real["id"]

            # The attacker first, guessing the victim's next id: the victim is not
            # answered with the attacker's message.
            forged = await attacker.say("lobby", "forged early", "k2")
            attacker.close()
            victim = await Client.connect(one.ws)
            await victim.join_when_free("lobby", "ada", VICTIM)
            mine = await victim.say("lobby", "mine", "k2")
            assert mine["id"] != forged["id"]

            # The victim's own retry, through the other gateway after a reconnect, still
            # dedupes: same id, stored once, not shown twice. The same client token gets
            # the nick back although the old connection may still be seen.
            victim.close()
            again = await Client.connect(two.ws)
            await again.join("lobby", "ada", VICTIM)
            retry = await again.say("lobby", "mine", "k2")
            assert retry["id"] == mine["id"]

            await watcher.say("lobby", "marker", "m")
            await watcher.expect("message", text="marker")
            shown = [m["text"] for m in watcher.messages("lobby")]
            assert shown == ["the real one", "forged", "forged early", "mine", "marker"]
            await eventually(lambda: c.history.store.count("lobby") == 5)
            stored = {m.id: m.text for m in c.history.store.latest("lobby", 10)}
            assert stored[real["id"]] == "the real one" and stored[mine["id"]] == "mine"

    run(scenario())


def message(mid: str, sender: str) -> dict:
    return {"id": mid, "room": "r", "nick": "ada", "text": mid, "ts": 1,
            "client_msg_id": "k1", "sender": sender}  # fmt: skip


def test_history_dedupes_per_sender(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.open()
    assert store.store([message("A", "aa"), message("B", "bb")]) == (2, 0)
    assert store.store([message("C", "aa")]) == (0, 1)  # the same sender's retry


def test_a_store_from_before_the_sender_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE messages (id TEXT PRIMARY KEY, room TEXT NOT NULL, nick TEXT NOT NULL,
        text TEXT NOT NULL, ts INTEGER NOT NULL, client_msg_id TEXT NOT NULL,
        UNIQUE (room, nick, client_msg_id)) WITHOUT ROWID;
        CREATE INDEX messages_by_room ON messages (room, id);
        INSERT INTO messages VALUES ('A', 'r', 'ada', 'old', 1, 'k1');"""
    )
    db.close()
    store = HistoryStore(path)
    store.open()
    assert [m.text for m in store.latest("r", 10)] == ["old"]
    # An old gateway's redelivery (no sender) is still a duplicate; a new sender is not.
    old = {"id": "A2", "room": "r", "nick": "ada", "text": "old", "ts": 1, "client_msg_id": "k1"}
    assert store.store([old]) == (0, 1)
    assert store.store([message("B", "bb")]) == (1, 0)
    assert store._conn().execute("PRAGMA user_version").fetchone()[0] == 2
