"""chatstack.probe.recovery: ULID floor ids, paging and dedupe, and the recovery guarantee.

The guarantee (docs/protocol.md, "Recovery"): a client that saw every message up to some
point, on gateways whose clocks differ by up to 2 s, gets exactly the ones it missed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import assume, find, given
from hypothesis import strategies as st

from chatstack import contract, ids
from chatstack.probe.recovery import (
    ALPHABET,
    MAX_TIME_MS,
    HistoryNotLive,
    Page,
    RecoveryError,
    RoomLog,
    check_page,
    fetch_after,
    floor_id,
    id_time_ms,
    is_id,
    recover,
    recovery_floor,
)

OVERLAP_MS = int(contract.section("protocol")["recovery_overlap_ms"])
# docs/protocol.md: gateway clocks that differ by up to 2 s are supported.
MAX_SKEW_MS = 2000

times = st.integers(min_value=0, max_value=MAX_TIME_MS)
randomness = st.integers(min_value=0, max_value=(1 << 80) - 1)


def make_id(ms: int, rand: int) -> str:
    return ids.encode(ms, rand)


class Store:
    """History as the API promises it: ``after`` exclusive, id order, ``limit`` per page."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = sorted(messages, key=lambda m: m["id"])
        self.calls: list[tuple[str | None, int]] = []

    async def fetch_page(self, after: str | None, limit: int) -> Page:
        self.calls.append((after, limit))
        if after is None:
            return Page(self.messages[-limit:], live=True)
        return Page([m for m in self.messages if m["id"] > after][:limit], live=True)


class LaggingHistory:
    """History that was cut off from the broker: it answers ``live`` from read number
    ``live_from`` on, and message i becomes visible at read ``visible_at[i]`` (what it
    drains after reconnecting). A read is counted when paging starts again at ``floor``."""

    def __init__(
        self, messages: list[dict[str, Any]], visible_at: list[int], live_from: int, floor: str
    ) -> None:
        self.messages, self.visible_at, self.live_from = messages, visible_at, live_from
        self.floor = floor
        self.reads = 0

    async def fetch_page(self, after: str | None, limit: int) -> Page:
        if after == self.floor:
            self.reads += 1
        visible = sorted(
            (m for m, v in zip(self.messages, self.visible_at, strict=True) if v <= self.reads),
            key=lambda m: m["id"],
        )
        page = [m for m in visible if after is None or m["id"] > after][:limit]
        return Page(page, live=self.reads >= self.live_from)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- ids ---------------------------------------------------------------------------------


@given(times)
def test_floor_id_round_trips_its_time(ms: int) -> None:
    floor = floor_id(ms)
    assert is_id(floor)
    assert id_time_ms(floor) == ms
    assert floor.endswith("0" * 16)


@given(times, randomness)
def test_agrees_with_the_services_ids(ms: int, rand: int) -> None:
    message_id = make_id(ms, rand)
    assert id_time_ms(message_id) == ids.id_time_ms(message_id) == ms
    assert floor_id(ms) == ids.floor_id(ms)


@given(times, randomness, times)
def test_floor_splits_ids_by_time(ms: int, rand: int, t: int) -> None:
    # Every id of millisecond t or later sorts at or above floor_id(t), every earlier one below.
    assert (make_id(ms, rand) >= floor_id(t)) == (ms >= t)


def test_floor_clamps_to_the_ulid_range() -> None:
    assert floor_id(-5) == "0" * 26
    assert floor_id(MAX_TIME_MS + 10) == floor_id(MAX_TIME_MS) == "7" + "Z" * 9 + "0" * 16


def test_recovery_floor_goes_back_by_the_overlap() -> None:
    newest = make_id(1_764_470_400_123, 12345)
    assert id_time_ms(recovery_floor(newest, OVERLAP_MS)) == 1_764_470_400_123 - OVERLAP_MS


@pytest.mark.parametrize("bad", ["", "0123", "0I23456789", "01234567u9ABCDEFGHJKMNPQRS"])
def test_id_time_refuses_non_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        id_time_ms(bad)


@given(st.text(alphabet=ALPHABET + "ILOUilou", max_size=30))
def test_is_id_is_exact(text: str) -> None:
    assert is_id(text) == (len(text) == 26 and all(c in ALPHABET for c in text))


# -- RoomLog -----------------------------------------------------------------------------


@given(st.lists(st.tuples(times, st.integers(0, 3)), max_size=30))
def test_room_log_shows_each_id_once_and_tracks_the_newest(items: list[tuple[int, int]]) -> None:
    log = RoomLog()
    batch = [{"id": make_id(ms, r)} for ms, r in items]
    shown = log.add_new(batch) + log.add_new(batch)  # the second batch is all duplicates
    shown_ids = [m["id"] for m in shown]
    assert shown_ids == sorted(set(shown_ids))
    assert set(shown_ids) == {m["id"] for m in batch}
    assert log.newest == (max(shown_ids) if shown_ids else None)


# -- paging ------------------------------------------------------------------------------


@given(
    st.lists(st.tuples(times, randomness), unique=True, max_size=40),
    st.integers(min_value=1, max_value=7),
    times,
)
def test_fetch_after_follows_pages_to_the_end(
    items: list[tuple[int, int]], limit: int, after_ms: int
) -> None:
    store = Store([{"id": make_id(ms, r)} for ms, r in items])
    after = floor_id(after_ms)
    got = run(fetch_after(store.fetch_page, after, limit)).messages
    assert [m["id"] for m in got] == sorted(m["id"] for m in store.messages if m["id"] > after)
    # It stops at the first short page: one call more than the full pages it read.
    assert len(store.calls) == len(got) // limit + 1


@pytest.mark.parametrize(
    ("page", "after", "limit", "error"),
    [
        ([{"id": "01JDQ6M5X8T3K7V2C9R4N0B1ZE"}] * 2, None, 5, "not greater"),
        ([{"id": "01JDQ6M5X8T3K7V2C9R4N0B1ZE"}], "01JDQ6M5X8T3K7V2C9R4N0B1ZE", 5, "not greater"),
        (
            [{"id": "01JDQ6M5X8T3K7V2C9R4N0B1ZE"}, {"id": "01JDQ6M5X8T3K7V2C9R4N0B1ZF"}],
            None,
            1,
            "limit",
        ),
        ([{"id": "not-an-id"}], None, 5, "valid id"),
        ([{"text": "no id"}], None, 5, "valid id"),
    ],
)
def test_check_page_refuses_what_history_must_not_answer(
    page: list[dict[str, Any]], after: str | None, limit: int, error: str
) -> None:
    with pytest.raises(RecoveryError, match=error):
        check_page(page, after, limit)


# -- the recovery guarantee --------------------------------------------------------------

# A conversation: each message is said at a true time (strictly later than the previous
# one) on a gateway whose clock is off by that gateway's skew; the client saw the first
# `seen` messages live, then reconnected.
conversations = st.tuples(
    st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=30),  # gaps, ms
    st.lists(st.integers(min_value=0, max_value=MAX_SKEW_MS), min_size=1, max_size=3),  # skews
    st.data(),
)


def said(gaps: list[int], skews: list[int], data: st.DataObject) -> list[dict[str, Any]]:
    now = 1_764_470_400_000
    messages = []
    for n, gap in enumerate(gaps):
        now += gap
        skew = data.draw(st.sampled_from(skews))
        messages.append({"id": make_id(now + skew, n), "n": n})
    return messages


def recovered(
    messages: list[dict[str, Any]],
    seen: int,
    overlap_ms: int,
    limit: int,
    live: int = 0,
    floor_from_live: bool = False,
) -> set[int]:
    """What a client shows after reconnecting: it saw ``messages[:seen]``, missed the
    rest except the last ``live`` ones, which arrived live after the re-join, before
    the recovery read history."""
    log = RoomLog()
    log.add_new(messages[:seen])
    resume_from = log.newest
    shown = log.add_new(messages[len(messages) - live :] if live else [])
    if floor_from_live:  # the mistake recover()'s resume_from exists to prevent
        resume_from = log.newest
    shown += run(recover(Store(messages).fetch_page, log, resume_from, overlap_ms, limit))
    return {m["n"] for m in shown}


@given(conversations, st.integers(min_value=1, max_value=5))
def test_recovery_returns_exactly_the_missed_messages(conversation: Any, limit: int) -> None:
    gaps, skews, data = conversation
    messages = said(gaps, skews, data)
    seen = data.draw(st.integers(min_value=1, max_value=len(messages)))
    assert recovered(messages, seen, OVERLAP_MS, limit) == set(range(seen, len(messages)))


@given(conversations, st.integers(min_value=1, max_value=5))
def test_live_messages_before_the_recovery_do_not_move_the_floor(
    conversation: Any, limit: int
) -> None:
    gaps, skews, data = conversation
    messages = said(gaps, skews, data)
    seen = data.draw(st.integers(min_value=1, max_value=len(messages)))
    live = data.draw(st.integers(min_value=0, max_value=len(messages) - seen))
    shown = recovered(messages, seen, OVERLAP_MS, limit, live)
    assert shown == set(range(seen, len(messages)))


def test_a_floor_taken_after_live_messages_loses_a_long_absence() -> None:
    """Why resume_from is the newest id from *before* the reconnect."""

    def loses_a_message(conversation: Any) -> bool:
        gaps, skews, data = conversation
        messages = said(gaps, skews, data)
        shown = recovered(messages, 1, OVERLAP_MS, 100, live=1, floor_from_live=True)
        return shown != set(range(1, len(messages)))

    find(conversations, loses_a_message)


def test_without_the_overlap_skewed_clocks_lose_messages() -> None:
    """The property above is not vacuous: with no overlap, some conversation loses one."""

    def loses_a_message(conversation: Any) -> bool:
        gaps, skews, data = conversation
        messages = said(gaps, skews, data)
        seen = data.draw(st.integers(min_value=1, max_value=len(messages)))
        assume(seen < len(messages))
        return recovered(messages, seen, 0, 100) != set(range(seen, len(messages)))

    find(conversations, loses_a_message)


def test_recovery_without_a_newest_id_reads_the_newest_page() -> None:
    messages = [{"id": make_id(1_000_000 + n, 0), "n": n} for n in range(10)]
    store = Store(messages)
    shown = run(recover(store.fetch_page, RoomLog(), None, OVERLAP_MS, 4))
    assert [m["n"] for m in shown] == [6, 7, 8, 9]
    assert store.calls == [(None, 4)]


# -- history that lags behind the broker ------------------------------------------------


def missed_conversation(count: int) -> tuple[RoomLog, str, list[dict[str, Any]]]:
    """A client that saw one message, then missed ``count`` said after it."""
    first = {"id": make_id(1_764_470_400_000, 0), "n": -1}
    log = RoomLog()
    log.add_new([first])
    missed = [{"id": make_id(1_764_470_400_000 + 10 * (n + 1), n), "n": n} for n in range(count)]
    return log, first["id"], missed


@given(
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=6),
    st.data(),
)
def test_rereads_until_live_twice_recover_what_history_stored_late(
    count: int, live_from: int, data: st.DataObject
) -> None:
    """History drains its backlog at most one recheck interval after it went live: every
    missed message is recovered, once, however late within that bound it shows up."""
    log, resume_from, missed = missed_conversation(count)
    visible_at = data.draw(st.lists(st.integers(1, live_from + 1), min_size=count, max_size=count))
    history = LaggingHistory(missed, visible_at, live_from, recovery_floor(resume_from, OVERLAP_MS))
    shown = run(recover(history.fetch_page, log, resume_from, OVERLAP_MS, 3, recheck_ms=1))
    assert sorted(m["n"] for m in shown) == list(range(count))
    # It stops at the first read that follows a live one.
    assert history.reads == live_from + 1


def test_one_read_loses_what_history_had_not_stored_yet() -> None:
    """Why the rereads exist: the same lagging history read once loses messages."""
    log, resume_from, missed = missed_conversation(3)
    history = LaggingHistory(missed, [1, 2, 3], 2, recovery_floor(resume_from, OVERLAP_MS))
    shown = run(recover(history.fetch_page, log, resume_from, OVERLAP_MS, 3))
    assert [m["n"] for m in shown] == [0]


def test_history_never_live_is_an_error_that_keeps_what_was_found() -> None:
    log, resume_from, missed = missed_conversation(2)
    history = LaggingHistory(missed, [1, 1], 10**9, recovery_floor(resume_from, OVERLAP_MS))
    with pytest.raises(HistoryNotLive, match=r"within 0\.05s") as caught:
        run(
            recover(
                history.fetch_page,
                log,
                resume_from,
                OVERLAP_MS,
                3,
                recheck_ms=1,
                settle_timeout_s=0.05,
            )
        )
    assert [m["n"] for m in caught.value.found] == [0, 1]
    assert {m["id"] for m in missed} <= log.seen
