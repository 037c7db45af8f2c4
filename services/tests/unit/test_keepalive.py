"""The gateway's websocket pings (gateway/keepalive.py), stepped tick by tick."""

from __future__ import annotations

import pytest

from chatstack.gateway.keepalive import Keepalive


class Socket:
    def __init__(self, keepalive: Keepalive, answers: bool = True) -> None:
        self.keepalive = keepalive
        self.answers = answers
        self.pinged_at: list[int] = []
        self.timed_out_at: int | None = None
        self.ticks = 0

    def keepalive_ping(self) -> None:
        self.pinged_at.append(self.ticks)
        if self.answers:
            self.keepalive.answered(self)

    def keepalive_timeout(self) -> None:
        self.timed_out_at = self.ticks


def step(keepalive: Keepalive, sockets: list[Socket], ticks: int) -> None:
    for _ in range(ticks):
        for socket in sockets:
            socket.ticks += 1
        keepalive.tick()


def test_every_socket_is_pinged_once_per_interval_from_its_first_interval() -> None:
    keepalive = Keepalive(interval_s=1.0, timeout_s=0.5, tick_s=0.25)  # 4 buckets
    sockets = [Socket(keepalive) for _ in range(10)]
    for socket in sockets:
        keepalive.add(socket)
    step(keepalive, sockets, 12)
    for socket in sockets:
        first = socket.pinged_at[0]
        assert 1 <= first <= 4
        assert socket.pinged_at == [first, first + 4, first + 8]
        assert socket.timed_out_at is None
    # Dealt to the buckets in turn: no bucket has more than its share.
    firsts = sorted(s.pinged_at[0] for s in sockets)
    assert max(firsts.count(t) for t in set(firsts)) == 3


def test_a_socket_that_does_not_answer_times_out_once_after_the_timeout() -> None:
    keepalive = Keepalive(interval_s=1.0, timeout_s=0.5, tick_s=0.25)
    silent, answering = Socket(keepalive, answers=False), Socket(keepalive)
    keepalive.add(silent)
    keepalive.add(answering)
    step(keepalive, [silent, answering], 20)
    assert len(silent.pinged_at) == 1  # forgotten once timed out
    assert silent.timed_out_at == silent.pinged_at[0] + 2  # 0.5 s = 2 ticks later
    assert answering.timed_out_at is None
    assert len(keepalive) == 1


def test_a_late_pong_within_the_timeout_counts() -> None:
    keepalive = Keepalive(interval_s=1.0, timeout_s=1.0, tick_s=0.25)
    late = Socket(keepalive, answers=False)
    keepalive.add(late)
    while not late.pinged_at:
        step(keepalive, [late], 1)
    first = late.pinged_at[0]
    step(keepalive, [late], 3)
    keepalive.answered(late)  # the tick before its deadline (4 ticks after the ping)
    step(keepalive, [late], 8)
    assert late.pinged_at == [first, first + 4]
    assert late.timed_out_at == first + 8


def test_a_discarded_socket_is_neither_pinged_nor_timed_out() -> None:
    keepalive = Keepalive(interval_s=1.0, timeout_s=0.5, tick_s=0.25)
    gone = Socket(keepalive, answers=False)
    keepalive.add(gone)
    while not gone.pinged_at:  # pinged, not answered
        step(keepalive, [gone], 1)
    keepalive.discard(gone)
    step(keepalive, [gone], 10)
    assert len(gone.pinged_at) == 1
    assert gone.timed_out_at is None
    assert len(keepalive) == 0


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 0), (1, 2)])
def test_refuses_a_timeout_beyond_the_interval(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_s <= interval_s"):
        Keepalive(interval, timeout)
