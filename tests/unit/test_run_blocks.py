"""pqml sample's blocks of measurements end at the first configuration save or checkpoint
(run._next_event), also when a resumed, extended run is not aligned to measure_every."""
import numpy as np

from parallel_qftml.run import _next_event


def brute(k, every, m, periods):
    j = np.arange(1, m + 1)
    hit = np.zeros(m, dtype=bool)
    for p in periods:
        if p:
            hit |= (k + j * every) % p == 0
    return int(j[hit][0]) if hit.any() else m


def test_next_event_is_the_first_save_or_checkpoint():
    rng = np.random.default_rng(5)
    for _ in range(20000):
        every, k, m = int(rng.integers(1, 7)), int(rng.integers(0, 300)), int(rng.integers(1, 60))
        periods = [int(rng.integers(0, 40)) for _ in range(2)]
        assert _next_event(k, every, m, periods) == brute(k, every, m, periods), (k, every, m, periods)
