"""A report over a large fleet stays readable: charts for the instances under most pressure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pooldoctor.evidence import Evidence, PoolInstance, PoolSample
from pooldoctor.readings import read
from pooldoctor.report.chartdata import MAX_POOL_CHARTS, pool_charts

NOW = datetime(2026, 11, 21, 9, 45, tzinfo=UTC)


def _instance(n: int, used: int, waiting: int = 0) -> PoolInstance:
    samples = tuple(
        PoolSample(NOW + timedelta(seconds=10 * i), "prometheus-history", checked_out=used,
                   waiting=waiting, counters={"pool_max": 10.0})
        for i in range(3)
    )  # fmt: skip
    return PoolInstance(f"app-{n:04d}:8000 main", samples)


def test_a_fleet_charts_only_the_instances_under_most_pressure() -> None:
    pools = [_instance(n, 2 + n % 5) for n in range(1000)]
    pools[617] = _instance(617, 10, waiting=7)
    pools[42] = _instance(42, 9)
    evidence = Evidence(NOW, NOW, "test", pools=tuple(pools))
    charts = pool_charts(read(evidence))
    assert len(charts) == MAX_POOL_CHARTS
    titles = [chart.title for chart in charts]
    assert any("app-0617:8000 main" in title for title in titles)
    assert any("app-0042:8000 main" in title for title in titles)


def test_a_small_fleet_charts_every_instance() -> None:
    pools = tuple(_instance(n, 3) for n in range(3))
    assert len(pool_charts(read(Evidence(NOW, NOW, "test", pools=pools)))) == 3
