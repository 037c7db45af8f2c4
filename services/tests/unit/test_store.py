from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chatstack.history.store import HistoryStore
from chatstack.ids import IdGenerator


def message(mid: str, room: str = "r", nick: str = "ada", cmid: str | None = None) -> dict:
    return {"id": mid, "room": room, "nick": nick, "text": f"t{mid}", "ts": 1,
            "client_msg_id": cmid or f"c{mid}"}  # fmt: skip


def open_store(tmp_path: Path) -> HistoryStore:
    store = HistoryStore(tmp_path / "sub" / "h.sqlite3")
    store.open()
    return store


def test_wal_and_durable_commit(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    db = store._conn()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_message_seen_twice_is_stored_once(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.store([message("A1"), message("A2")]) == (2, 0)
    assert store.store([message("A1")]) == (0, 1)  # redelivered by the broker
    # Retried through another gateway: new id, same (room, nick, client_msg_id).
    assert store.store([message("A3", cmid="cA1")]) == (0, 1)
    # Same client_msg_id from another nick or room is another message.
    assert store.store(
        [message("A4", nick="bob", cmid="cA1"), message("A5", room="q", cmid="cA1")]
    ) == (2, 0)
    assert [m.id for m in store.after("r", "", 10)] == ["A1", "A2", "A4"]


def test_after_and_latest(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.store([message(f"{i:02d}") for i in range(10)] + [message("05x", room="other")])
    assert [m.id for m in store.after("r", "04", 3)] == ["05", "06", "07"]
    assert [m.id for m in store.latest("r", 3)] == ["07", "08", "09"]
    assert store.latest("nobody", 3) == []
    assert store.count() == 11


def test_reopen_keeps_messages(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.store([message("A1")])
    store.close()
    again = open_store(tmp_path)
    assert again.count("r") == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 60), st.integers(1, 7), st.data())
def test_paging_after_a_floor_returns_everything_once_in_id_order(
    n: int, limit: int, data: st.DataObject
) -> None:
    store = HistoryStore(":memory:")
    store.open()
    times = iter(data.draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)))
    generator = IdGenerator(lambda: next(times))
    made = [generator.new()[0] for _ in range(n)]
    shuffled = data.draw(st.permutations(made))
    store.store([message(mid) for mid in shuffled])
    seen: list[str] = []
    after = ""
    while True:
        page = store.after("r", after, limit)
        seen += [m.id for m in page]
        if len(page) < limit:
            break
        after = page[-1].id
    assert seen == sorted(made)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 60), st.integers(1, 7), st.data())
def test_paging_back_with_before_returns_everything_once_in_id_order(
    n: int, limit: int, data: st.DataObject
) -> None:
    """Scroll-back: the newest page, then ``before=<oldest shown>`` until a short page,
    yields every message of the room once; each page is ascending and ends right before
    its cursor; other rooms never leak in."""
    store = HistoryStore(":memory:")
    store.open()
    times = iter(data.draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)))
    generator = IdGenerator(lambda: next(times))
    made = [generator.new()[0] for _ in range(n)]
    store.store([message(mid) for mid in data.draw(st.permutations(made))])
    store.store([message(mid + "X", room="other") for mid in made[: n // 2]])
    ordered = sorted(made)
    seen = [m.id for m in store.latest("r", limit)]
    assert seen == ordered[-limit:] if ordered else seen == []
    page_len = len(seen)
    while page_len == limit:
        page = [m.id for m in store.before("r", seen[0], limit)]
        assert page == sorted(page)
        if page:
            assert ordered.index(page[-1]) + 1 == ordered.index(seen[0])  # no gap
        seen = page + seen
        page_len = len(page)
    assert seen == ordered
    # A floor (a prefix, as ``after`` takes) works as a cursor too.
    if ordered:
        cut = data.draw(st.sampled_from(ordered))[:10]
        assert [m.id for m in store.before("r", cut, 500)] == [i for i in ordered if i < cut]
