from hypothesis import given
from hypothesis import strategies as st

from chatstack.gateway.idempotency import IdempotencyCache


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire() -> None:
    clock = Clock()
    cache = IdempotencyCache(ttl_s=10, clock=clock)
    cache.remember(("r", "n", "c"), "ID1", 1)
    clock.now = 9
    assert cache.get(("r", "n", "c")).message_id == "ID1"
    clock.now = 11
    assert cache.get(("r", "n", "c")) is None


def test_bounded_size_forgets_the_oldest() -> None:
    cache = IdempotencyCache(ttl_s=100, max_entries=3, clock=Clock())
    for i in range(5):
        cache.remember(("r", "n", str(i)), f"ID{i}", i)
    assert len(cache) == 3
    assert cache.get(("r", "n", "0")) is None
    assert cache.get(("r", "n", "4")).message_id == "ID4"


@given(
    st.lists(
        st.tuples(
            st.text(max_size=6), st.text(max_size=6), st.text(max_size=6), st.text(max_size=6)
        ),
        min_size=1,
        max_size=30,
        unique=True,
    )
)
def test_distinct_keys_stay_distinct(keys: list[tuple[str, str, str, str]]) -> None:
    """Keys are stored as digests: keys that differ in any field (or only in where one field
    ends and the next begins) are different entries."""
    cache = IdempotencyCache(ttl_s=100, clock=Clock())
    for n, key in enumerate(keys):
        cache.remember(key, f"ID{n}", n)
    assert len(cache) == len(keys)
    for n, key in enumerate(keys):
        assert cache.get(key).message_id == f"ID{n}"
    split_differently = ("ab", "c", "d", "e"), ("a", "bc", "d", "e")
    for n, key in enumerate(split_differently):
        cache.remember(key, f"S{n}", n)
    assert [cache.get(k).message_id for k in split_differently] == ["S0", "S1"]
