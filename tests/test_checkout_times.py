"""use_time and wait_time histograms separate an undersized pool from connections held too long."""

from __future__ import annotations

from pooldoctor.checks import connection_leak, pool_undersized
from pooldoctor.evidence import Evidence
from pooldoctor.readings.pools import checkout_times
from tests.evidence_builders import SAMPLE_TIMES, evidence, pool, pool_sample


def _fleet(wait_per_checkout: float, use_per_checkout: float) -> Evidence:
    """A full pool whose histograms grew by 100 checkouts between samples."""
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        done = 100.0 * index
        counters = {
            "wait_time_seconds_sum": done * wait_per_checkout,
            "wait_time_seconds_count": done,
            "use_time_seconds_sum": done * use_per_checkout,
            "use_time_seconds_count": done,
        }
        samples.append(pool_sample(at, 30, waiting=4, counters=counters))
    return evidence(pools=[pool(*samples)])


def test_checkout_times_are_means_over_the_window() -> None:
    times = checkout_times(_fleet(0.8, 0.05))
    assert times is not None
    assert (times.waits, times.uses) == (200, 200)
    assert round(times.mean_wait_seconds or 0, 3) == 0.8
    assert round(times.mean_use_seconds or 0, 3) == 0.05


def test_long_wait_short_use_is_an_undersized_pool() -> None:
    (finding,) = pool_undersized.SPEC.run(_fleet(0.8, 0.05))
    assert "callers wait longer than they use a connection" in finding.summary
    assert "mean wait 800ms" in finding.summary
    assert connection_leak.SPEC.run(_fleet(0.8, 0.05)) == []


def test_long_use_is_not_an_undersized_pool_but_points_at_holders() -> None:
    assert pool_undersized.SPEC.run(_fleet(2.0, 240.0)) == []
    (finding,) = connection_leak.SPEC.run(_fleet(2.0, 240.0))
    assert "mean use 4m00s" in finding.summary or "mean use 4m" in finding.summary


def test_no_histograms_means_no_times() -> None:
    assert checkout_times(evidence(pools=[pool(pool_sample(SAMPLE_TIMES[0], 3))])) is None
