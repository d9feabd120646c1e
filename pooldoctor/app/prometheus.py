"""Pool metrics through prometheus_client: OpenTelemetry semantic-convention names and pooldoctor's.

`PoolCollector` reads every instrumented engine at scrape time (nothing on the hot path but the
tracker's counters and histograms). `register()` puts it in the app's registry, or under
gunicorn's multiprocess mode mirrors each worker into prometheus_client's shared files instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from pooldoctor.app.histogram import Histogram
from pooldoctor.app.instrument import PoolTracker, instrumented_engines, tracker_for
from pooldoctor.app.status import pool_status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POOL_LABEL = "db_client_connection_pool_name"
STATE_LABEL = "db_client_connection_state"
LEGACY_LABEL = "engine"
MULTIPROCESS_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


@dataclass(frozen=True)
class Legacy:
    """One pooldoctor_pool_* family (the names before the OpenTelemetry ones; kept for alerts)."""

    name: str
    kind: str  # gauge | counter
    help: str
    key: str  # payload key, or "counters.<name>", or "oldest_age"


LEGACY: tuple[Legacy, ...] = (
    Legacy("pooldoctor_pool_size", "gauge", "Configured pool size (pool_size).", "size"),
    Legacy("pooldoctor_pool_checked_out", "gauge", "Connections checked out now.", "checked_out"),
    Legacy("pooldoctor_pool_checked_in", "gauge", "Idle connections in the pool.", "checked_in"),
    Legacy(
        "pooldoctor_pool_overflow",
        "gauge",
        "SQLAlchemy overflow(): connections beyond pool_size (negative while below it).",
        "overflow",
    ),
    Legacy("pooldoctor_pool_max_overflow", "gauge", "Configured max_overflow.", "max_overflow"),
    Legacy(
        "pooldoctor_pool_timeout_seconds", "gauge", "Configured pool_timeout in seconds.", "timeout"
    ),
    Legacy(
        "pooldoctor_pool_checkouts",
        "counter",
        "Checkouts since instrumented.",
        "counters.checkouts",
    ),
    Legacy(
        "pooldoctor_pool_checkins", "counter", "Checkins since instrumented.", "counters.checkins"
    ),
    Legacy(
        "pooldoctor_pool_timeouts",
        "counter",
        "Checkouts that gave up after pool_timeout (QueuePool error 3o7r).",
        "counters.pool_timeouts",
    ),
    Legacy(
        "pooldoctor_pool_invalidations",
        "counter",
        "Connections invalidated since instrumented.",
        "counters.invalidations",
    ),
    Legacy(
        "pooldoctor_pool_connects",
        "counter",
        "New DBAPI connections opened since instrumented.",
        "counters.connects",
    ),
    Legacy(
        "pooldoctor_pool_oldest_checkout_age_seconds",
        "gauge",
        "Age of the oldest checkout still held (0 when none).",
        "oldest_age",
    ),
)


def _number(raw: Any) -> float | None:
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def legacy_value(payload: Mapping[str, Any], key: str) -> float | None:
    """A pooldoctor_pool_* value from a pool_status payload; None when the pool cannot say."""
    if key == "oldest_age":
        if not payload.get("instrumented"):
            return None
        holders = payload.get("holders") or []
        return float(holders[0]["age_seconds"]) if holders else 0.0
    if key.startswith("counters."):
        return _number((payload.get("counters") or {}).get(key.removeprefix("counters.")))
    return _number(payload.get(key))


@dataclass(frozen=True)
class PoolReading:
    """What one engine's pool shows at scrape time, in semantic-convention terms."""

    used: float | None
    idle: float | None
    max: float | None
    idle_max: float | None
    pending: float | None
    timeouts: float | None


def pool_reading(payload: Mapping[str, Any], tracker: PoolTracker | None) -> PoolReading:
    """Counts by state, max (size + max_overflow), pending callers and timeouts."""
    size = _number(payload.get("size"))
    overflow = _number(payload.get("max_overflow"))
    capacity = None
    if size is not None:
        capacity = size if overflow is None else (size + overflow if overflow >= 0 else None)
    return PoolReading(
        used=_number(payload.get("checked_out")),
        idle=_number(payload.get("checked_in")),
        max=capacity,
        idle_max=size,
        pending=float(tracker.pending) if tracker is not None else None,
        timeouts=float(tracker.pool_timeouts) if tracker is not None else None,
    )


def engine_label(engine: Any) -> str:
    """`host:port/database` of an engine's URL: a pool name without credentials."""
    url = engine.sync_engine.url if hasattr(engine, "sync_engine") else engine.url
    location = f"{url.host or 'localhost'}{f':{url.port}' if url.port else ''}"
    return f"{location}/{url.database or ''}"


def labelled_engines(engines: Mapping[str, Any] | None) -> dict[str, Any]:
    """The given label -> engine mapping, or every instrumented engine by its URL's location."""
    if engines is not None:
        return dict(engines)
    labelled: dict[str, Any] = {}
    for engine in instrumented_engines():
        label = engine_label(engine)
        while label in labelled:
            label += "'"
        labelled[label] = engine
    return labelled


class PoolCollector(Collector):
    """A prometheus_client collector for the pools of `engines` (default: all instrumented)."""

    def __init__(self, engines: Mapping[str, Any] | None = None, legacy: bool = True) -> None:
        self.engines = engines
        self.legacy = legacy

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the engines at scrape time; no registration-time scrape

    def collect(self) -> Iterator[Metric]:
        readings = []
        for label, engine in labelled_engines(self.engines).items():
            payload = pool_status(engine, max_holders=1)
            tracker = tracker_for(engine)
            readings.append((label, payload, tracker, pool_reading(payload, tracker)))
        yield from semantic_families(readings)
        if self.legacy:
            yield from legacy_families([(label, payload) for label, payload, _, _ in readings])


Reading = tuple[str, Mapping[str, Any], PoolTracker | None, PoolReading]


def semantic_families(readings: Sequence[Reading]) -> Iterator[Metric]:
    """db_client_connection_* families as OpenTelemetry's Prometheus exporters write them."""
    count = GaugeMetricFamily(
        "db_client_connection_count",
        "The number of connections that are currently in state described by the state attribute.",
        labels=[POOL_LABEL, STATE_LABEL],
    )
    gauges = {
        "max": GaugeMetricFamily(
            "db_client_connection_max",
            "The maximum number of open connections allowed.",
            labels=[POOL_LABEL],
        ),
        "idle_max": GaugeMetricFamily(
            "db_client_connection_idle_max",
            "The maximum number of idle open connections allowed.",
            labels=[POOL_LABEL],
        ),
        "pending": GaugeMetricFamily(
            "db_client_connection_pending_requests",
            "The number of current pending requests for an open connection.",
            labels=[POOL_LABEL],
        ),
    }
    timeouts = CounterMetricFamily(
        "db_client_connection_timeouts",
        "The number of connection timeouts that have occurred trying to obtain a connection "
        "from the pool.",
        labels=[POOL_LABEL],
    )
    histograms = {
        name: HistogramMetricFamily(
            f"db_client_connection_{name}_seconds", text, labels=[POOL_LABEL], unit=""
        )
        for name, text in (
            ("create_time", "The time it took to create a new connection."),
            ("wait_time", "The time it took to obtain an open connection from the pool."),
            ("use_time", "The time between borrowing a connection and returning it to the pool."),
        )
    }
    for label, _payload, tracker, reading in readings:
        for state, value in (("used", reading.used), ("idle", reading.idle)):
            if value is not None:
                count.add_metric([label, state], value)
        for key, family in gauges.items():
            value = getattr(reading, key)
            if value is not None:
                family.add_metric([label], value)
        if reading.timeouts is not None:
            timeouts.add_metric([label], reading.timeouts)
        if tracker is not None:
            for name, buckets in histograms.items():
                timings: Histogram = getattr(tracker, name)
                buckets.add_metric([label], timings.cumulative(), timings.total)
    yield count
    yield from gauges.values()
    yield timeouts
    yield from histograms.values()


def legacy_families(payloads: list[tuple[str, Mapping[str, Any]]]) -> Iterator[Metric]:
    """pooldoctor_pool_* families, one `engine` label each; values a pool cannot report skipped."""
    for legacy in LEGACY:
        factory = GaugeMetricFamily if legacy.kind == "gauge" else CounterMetricFamily
        family = factory(legacy.name, legacy.help, labels=[LEGACY_LABEL])
        for label, payload in payloads:
            value = legacy_value(payload, legacy.key)
            if value is not None:
                family.add_metric([label], value)
        if family.samples:
            yield family


def exposition(engines: Mapping[str, Any] | None = None) -> bytes:
    """The text exposition (format 0.0.4) of `engines`' pools."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(engines))
    return generate_latest(registry)


def multiprocess_mode() -> bool:
    """True when prometheus_client runs in multiprocess mode (gunicorn with a shared dir)."""
    return any(os.environ.get(name) for name in MULTIPROCESS_ENV)


def register(
    registry: CollectorRegistry | None = None,
    engines: Mapping[str, Any] | None = None,
    interval: float = 1.0,
) -> Any:
    """Expose the pools in the app's registry (default: prometheus_client's REGISTRY).

    Under multiprocess mode a collector would only see the worker that serves the scrape, so
    each worker's numbers are mirrored every `interval` seconds into prometheus_client's shared
    files instead (call this in every worker, e.g. gunicorn's post_fork)."""
    if multiprocess_mode():
        from pooldoctor.app.multiprocess import start_export

        return start_export(engines, interval)
    collector = PoolCollector(engines)
    (registry if registry is not None else REGISTRY).register(collector)
    return collector
