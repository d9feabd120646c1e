"""A cheap cumulative-on-read latency histogram for the pool's wait, use and create times."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

# OpenTelemetry's advised bucket boundaries for db.client.connection.* durations, in seconds.
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

Observer = Callable[[float], None]


class Histogram:
    """Counts per bucket (not cumulative) and a sum; `observe` is one bisect and two adds.

    The checkout path inlines `observe` (see instrument.wrap_pool). Extra `observers`
    (OpenTelemetry instruments) receive every value too."""

    __slots__ = ("bounds", "counts", "observers", "total")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.observers: list[Observer] = []

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        if self.observers:
            notify(self.observers, seconds)

    def cumulative(self) -> list[tuple[str, float]]:
        """(upper bound as Prometheus writes it, cumulative count) including +Inf."""
        running = 0
        buckets = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return buckets


def notify(observers: list[Observer], seconds: float) -> None:
    """Hand one value to every extra observer."""
    for observer in observers:
        observer(seconds)
