from __future__ import annotations

import random
import statistics

from gateway.worker import backoff_delay


def test_delays_grow_exponentially_within_full_jitter_windows() -> None:
    random.seed(7)
    means = []
    for attempt in range(1, 7):
        draws = [backoff_delay(attempt, base=1.0, cap=1000.0) for _ in range(2000)]
        assert all(0.5 <= d <= 2 ** (attempt - 1) for d in draws)
        means.append(statistics.mean(draws))
    assert all(later > earlier * 1.5 for earlier, later in zip(means[1:], means[2:], strict=False))


def test_cap_bounds_the_delay_and_retry_after_is_a_floor() -> None:
    random.seed(1)
    assert max(backoff_delay(30, base=1.0, cap=60.0) for _ in range(500)) <= 60.0
    assert min(backoff_delay(1, base=1.0, cap=60.0, retry_after=30.0) for _ in range(100)) >= 30.0
