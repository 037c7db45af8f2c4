from hypothesis import given
from hypothesis import strategies as st

from chatstack.ratelimit import AbuseMeter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now = 100.0  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3


@given(st.floats(0.1, 50), st.integers(1, 20), st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock)
    accepted = 0
    for gap in gaps:
        clock.now += gap
        accepted += bucket.take()
    assert accepted <= burst + rate * clock.now + 1e-6


def test_abuse_meter_window() -> None:
    clock = Clock()
    meter = AbuseMeter(max_errors=3, window=10, clock=clock)
    assert not meter.record()
    assert not meter.record()
    clock.now = 11  # the first two fell out of the window
    assert not meter.record()
    assert not meter.record()
    assert meter.record()


def test_time_the_server_stalled_is_credited_beyond_the_burst() -> None:
    """A client sending 1/s under a 2/s limit while the server did not read for 5 s: its
    frames arrive at once afterwards and are all accepted; normal time still caps at burst."""
    clock = Clock()
    stalled = [0.0]
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock, stalled=lambda: stalled[0])
    clock.now, stalled[0] = 5.0, 5.0
    assert sum(bucket.take() for _ in range(5)) == 5
    # The credit is spent; without a stall the burst is the cap again.
    clock.now = 100.0
    assert sum(bucket.take() for _ in range(10)) == 2


def test_without_a_stall_a_backlog_is_refused_beyond_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    clock.now = 5.0
    assert sum(bucket.take() for _ in range(5)) == 2
