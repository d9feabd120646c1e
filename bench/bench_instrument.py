"""Cost of pooldoctor.instrument: checkout+checkin loop with and without it, interleaved."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import sqlalchemy as sa

import pooldoctor
from pooldoctor.lab.cluster import PostgresUnavailable, TempCluster

CHECKOUTS_PER_ROUND = 5_000
ROUNDS = 9  # alternating plain/instrumented rounds on one engine; the median damps noise
WARMUP_CHECKOUTS = 500
TARGET_RATIO = 1.3  # instrumenting must stay cheap enough to leave on in production
MAX_SECONDS = 120.0  # bound on the whole measurement


def _checkout_loop(engine: sa.Engine, count: int) -> float:
    """Seconds for `count` pool checkouts and checkins (no statement is sent)."""
    start = time.perf_counter()
    for _ in range(count):
        engine.connect().close()
    return time.perf_counter() - start


def _median_times(engine: sa.Engine) -> tuple[float, float]:
    """Median seconds per round without and with instrument, on the same engine and connection."""
    deadline = time.monotonic() + MAX_SECONDS
    plain_times: list[float] = []
    instrumented_times: list[float] = []
    for round_number in range(ROUNDS):
        for instrumented in (round_number % 2 == 1, round_number % 2 == 0):
            if instrumented:
                pooldoctor.instrument(engine)
            else:
                pooldoctor.uninstrument(engine)
            seconds = _checkout_loop(engine, CHECKOUTS_PER_ROUND)
            (instrumented_times if instrumented else plain_times).append(seconds)
        if time.monotonic() > deadline:
            break
    pooldoctor.uninstrument(engine)
    return statistics.median(plain_times), statistics.median(instrumented_times)


def _measure(make_engine: Callable[[], sa.Engine], label: str) -> float:
    engine = make_engine()
    try:
        _checkout_loop(engine, WARMUP_CHECKOUTS)
        plain_s, instrumented_s = _median_times(engine)
    finally:
        engine.dispose()
    per_plain = plain_s / CHECKOUTS_PER_ROUND * 1e6
    per_instr = instrumented_s / CHECKOUTS_PER_ROUND * 1e6
    ratio = instrumented_s / plain_s
    print(
        f"{label}: checkout+checkin {per_plain:.1f} us plain, {per_instr:.1f} us instrumented "
        f"(+{per_instr - per_plain:.1f} us); ratio {ratio:.2f}x (target < {TARGET_RATIO}x)"
    )
    return ratio


def main() -> int:
    """Measure on a throwaway PostgreSQL (pool_pre_ping off); SQLite when PostgreSQL is absent."""
    try:
        with TempCluster() as cluster:
            ratio = _measure(
                lambda: sa.create_engine(cluster.url(), pool_size=1, pool_pre_ping=False),
                "postgresql QueuePool",
            )
    except PostgresUnavailable as exc:
        print(f"PostgreSQL unavailable ({exc}); measuring SQLite QueuePool instead")
        ratio = _measure(
            lambda: sa.create_engine("sqlite://", poolclass=sa.QueuePool, pool_size=1),
            "sqlite QueuePool",
        )
    return 0 if ratio < TARGET_RATIO else 1
