from hypothesis import given
from hypothesis import strategies as st

from chatstack import ids
from chatstack.ids import IdGenerator

MAX_MS = (1 << 48) - 1


def test_shape() -> None:
    message_id, ms = IdGenerator(lambda: 1_700_000_000.123).new()
    assert len(message_id) == 26
    assert set(message_id) <= set(ids.ALPHABET)
    assert ms == 1_700_000_000_123
    assert ids.id_time_ms(message_id) == ms


def test_strictly_increasing_within_one_millisecond_and_when_the_clock_steps_back() -> None:
    times = iter([10.0, 10.0, 10.0, 9.0, 9.5, 11.0])
    generator = IdGenerator(lambda: next(times))
    made = [generator.new()[0] for _ in range(6)]
    assert made == sorted(made)
    assert len(set(made)) == 6
    # Stepping back never goes below the last time used.
    assert [ids.id_time_ms(i) for i in made] == [10000, 10000, 10000, 10000, 10000, 11000]


def test_two_generators_never_collide() -> None:
    a, b = IdGenerator(lambda: 5.0), IdGenerator(lambda: 5.0)
    made = {a.new()[0] for _ in range(2000)} | {b.new()[0] for _ in range(2000)}
    assert len(made) == 4000


@given(st.integers(0, MAX_MS), st.integers(0, MAX_MS))
def test_string_order_is_time_order(t1: int, t2: int) -> None:
    id1 = ids.encode(t1, (1 << 80) - 1)
    id2 = ids.encode(t2, 0)
    if t1 < t2:
        assert id1 < id2
    assert ids.id_time_ms(id1) == t1


@given(st.integers(0, MAX_MS), st.integers(0, (1 << 80) - 1))
def test_floor_id_is_below_every_id_of_its_millisecond(ms: int, randomness: int) -> None:
    assert ids.floor_id(ms) <= ids.encode(ms, randomness)
    if ms > 0:
        assert ids.encode(ms - 1, randomness) < ids.floor_id(ms)
    assert ids.is_id_prefix(ids.floor_id(ms))


def test_id_prefix_check() -> None:
    assert ids.is_id_prefix("")
    assert ids.is_id_prefix("01ARZ")
    assert not ids.is_id_prefix("01ARZ3NDEKTSV4RRFFQ69G5FAVX")  # 27 characters
    assert not ids.is_id_prefix("01ARI")  # I is not in Crockford's alphabet
    assert not ids.is_id_prefix("01arz")
