"""Which client in pg_stat_activity is the app: the one whose sessions match the pool samples."""

from __future__ import annotations

from datetime import datetime, timedelta

from pooldoctor.evidence import Backend, PoolInstance
from pooldoctor.readings.app import identify_app
from tests.evidence_builders import NOW, activity, idle, idle_in_tx, pool, pool_sample, postgres

ROUNDS = (NOW - timedelta(seconds=2), NOW - timedelta(seconds=1), NOW)


def _round(at: datetime, leaked: int, neighbour: int) -> list[Backend]:
    since = NOW - timedelta(seconds=30)
    return [
        *(idle_in_tx(10 + i, since, app="orders-api", user="app") for i in range(leaked)),
        *(idle_in_tx(50 + i, since, app="nightly-report", user="report") for i in range(neighbour)),
        idle(90, at, app="psql", user="dba"),
    ]


def _pools(checked_out: int, size: int, instances: int = 1) -> tuple[PoolInstance, ...]:
    return tuple(
        pool(
            *(pool_sample(at, checked_out, size=size, max_overflow=0) for at in ROUNDS),
            url=f"http://orders-{n}:8000/pool-status",
        )
        for n in range(instances)
    )


def _samples(leaked: int, neighbour: int) -> list:  # type: ignore[type-arg]
    return [activity(at, _round(at, leaked, neighbour)) for at in ROUNDS]


def test_busier_neighbour_is_not_the_app_when_the_pool_samples_say_otherwise() -> None:
    pg = postgres(*_samples(leaked=3, neighbour=6))
    app = identify_app(pg, None, _pools(checked_out=3, size=3), workers=1)
    assert app is not None and app.application_name == "orders-api" and app.by_pool_evidence
    assert "match the pool-status samples in 3 of 3 rounds" in app.reason
    assert "3 in use vs 3 checked out, capacity 3" in app.reason
    assert "application 'nightly-report' has more sessions (6 per sample)" in app.reason


def test_without_pool_samples_the_count_decides() -> None:
    app = identify_app(postgres(*_samples(leaked=3, neighbour=6)))
    assert app is not None and app.application_name == "nightly-report"
    assert not app.by_pool_evidence and "most client backends" in app.reason


def test_count_decides_when_both_fit_the_pool_samples_equally() -> None:
    # One of several processes sampled (WEB_CONCURRENCY=4): both fit checked_out <= in use <=
    # capacity, so the pool samples cannot tell them apart.
    pg = postgres(*_samples(leaked=3, neighbour=6))
    app = identify_app(pg, None, _pools(checked_out=2, size=3), workers=4)
    assert app is not None and app.application_name == "nightly-report"
    assert not app.by_pool_evidence


def test_fleet_capacity_rules_out_a_neighbour_bigger_than_every_pool() -> None:
    # Two processes of 3 each: 6 sessions could be the app, 9 cannot.
    pg = postgres(*_samples(leaked=5, neighbour=9))
    app = identify_app(pg, None, _pools(checked_out=2, size=3), workers=2)
    assert app is not None and app.application_name == "orders-api" and app.by_pool_evidence
    assert "capacity 6" in app.reason


def test_configured_name_still_wins() -> None:
    pg = postgres(*_samples(leaked=3, neighbour=6))
    app = identify_app(pg, "nightly-report", _pools(checked_out=3, size=3), workers=1)
    assert app is not None and app.application_name == "nightly-report"
