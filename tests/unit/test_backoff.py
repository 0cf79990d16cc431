import random

from batchpredict.service.worker import full_jitter


def test_full_jitter_stays_within_the_capped_exponential() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(2.0, 0.05 * 2**attempt)
        samples = [full_jitter(attempt, 0.05, 2.0, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spreads over the whole range
