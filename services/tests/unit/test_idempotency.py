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
