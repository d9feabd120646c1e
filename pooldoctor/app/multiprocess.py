"""Pool metrics under prometheus_client's multiprocess mode: each worker writes the shared files.

Gauges use `livesum` (summed over live workers; mark dead workers with
`prometheus_client.multiprocess.mark_process_dead` in gunicorn's child_exit), counters add
their increments, and histograms add the bucket counts and sum observed since the last publish
(so nothing on the checkout path writes to the shared files)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from pooldoctor.app.histogram import DURATION_BUCKETS
from pooldoctor.app.histogram import Histogram as TimingHistogram
from pooldoctor.app.instrument import PoolTracker, tracker_for
from pooldoctor.app.prometheus import (
    LEGACY_LABEL,
    POOL_LABEL,
    STATE_LABEL,
    labelled_engines,
    legacy_value,
    pool_reading,
)
from pooldoctor.app.status import pool_status

HISTOGRAMS = ("create_time", "wait_time", "use_time")
LEGACY_GAUGES = {  # pooldoctor_pool_* gauges kept for the older alert rules
    "pooldoctor_pool_size": "size",
    "pooldoctor_pool_checked_out": "checked_out",
    "pooldoctor_pool_checked_in": "checked_in",
    "pooldoctor_pool_max_overflow": "max_overflow",
}


class MultiprocessExport:
    """Mirrors this process' pools into multiprocess-mode metrics, every `interval` seconds."""

    def __init__(self, engines: Mapping[str, Any] | None, interval: float) -> None:
        self.engines = engines
        self.interval = interval
        self._stop = threading.Event()
        self._published_timeouts: dict[str, float] = {}
        self._published_timings: dict[tuple[str, str], tuple[list[int], float]] = {}
        self.count = Gauge(
            "db_client_connection_count",
            "Connections by state.",
            [POOL_LABEL, STATE_LABEL],
            registry=None,
            multiprocess_mode="livesum",
        )
        self.gauges = {
            key: Gauge(name, text, [POOL_LABEL], registry=None, multiprocess_mode="livesum")
            for key, name, text in (
                ("max", "db_client_connection_max", "Most open connections allowed."),
                ("idle_max", "db_client_connection_idle_max", "Most idle connections kept."),
                ("pending", "db_client_connection_pending_requests", "Callers waiting."),
            )
        }
        self.legacy = {
            name: Gauge(name, name, [LEGACY_LABEL], registry=None, multiprocess_mode="livesum")
            for name in LEGACY_GAUGES
        }
        self.timeouts = Counter(
            "db_client_connection_timeouts",
            "Checkouts that timed out waiting for the pool.",
            [POOL_LABEL],
            registry=None,
        )
        self.histograms = {
            name: Histogram(
                f"db_client_connection_{name}_seconds",
                f"db.client.connection.{name} in seconds.",
                [POOL_LABEL],
                registry=None,
                buckets=DURATION_BUCKETS,
            )
            for name in HISTOGRAMS
        }

    def _publish_timings(self, label: str, tracker: PoolTracker) -> None:
        for name, histogram in self.histograms.items():
            timings: TimingHistogram = getattr(tracker, name)
            counts, total = list(timings.counts), timings.total
            before, total_before = self._published_timings.get(
                (label, name), ([0] * len(counts), 0.0)
            )
            child = histogram.labels(label)
            # prometheus_client has no public "add n observations": its per-bucket values
            # (non-cumulative, same `le` bounds) and sum are incremented directly.
            for index, (now, then) in enumerate(zip(counts, before, strict=True)):
                if now > then:
                    child._buckets[index].inc(now - then)
            if total > total_before:
                child._sum.inc(total - total_before)
            self._published_timings[(label, name)] = (counts, total)

    def publish(self) -> None:
        """Write this process' current numbers into the shared files."""
        for label, engine in labelled_engines(self.engines).items():
            tracker = tracker_for(engine)
            payload = pool_status(engine, max_holders=0)
            reading = pool_reading(payload, tracker)
            for state, value in (("used", reading.used), ("idle", reading.idle)):
                if value is not None:
                    self.count.labels(label, state).set(value)
            for key, gauge in self.gauges.items():
                value = getattr(reading, key)
                if value is not None:
                    gauge.labels(label).set(value)
            for name, key in LEGACY_GAUGES.items():
                value = legacy_value(payload, key)
                if value is not None:
                    self.legacy[name].labels(label).set(value)
            if tracker is not None:
                self._publish_timings(label, tracker)
                published = self._published_timeouts.get(label, 0.0)
                if reading.timeouts is not None and reading.timeouts > published:
                    self.timeouts.labels(label).inc(reading.timeouts - published)
                    self._published_timeouts[label] = reading.timeouts

    def run(self) -> None:
        while not self._stop.is_set():
            self.publish()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()


def start_export(engines: Mapping[str, Any] | None, interval: float) -> MultiprocessExport:
    """Publish now and then every `interval` seconds from a daemon thread."""
    export = MultiprocessExport(engines, interval)
    export.publish()
    threading.Thread(target=export.run, name="pooldoctor-metrics", daemon=True).start()
    return export
