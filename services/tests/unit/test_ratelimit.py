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
