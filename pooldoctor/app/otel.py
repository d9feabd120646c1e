"""Pool metrics through the OpenTelemetry metrics API, for apps that already run a MeterProvider.

Optional: needs `opentelemetry-api` (`pip install 'pooldoctor[otel]'`). Gauges are observable
instruments read at each collection; wait/use/create times are recorded into histograms as
they happen, from the moment `register_otel` first sees an engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pooldoctor import __version__
from pooldoctor.app.histogram import DURATION_BUCKETS
from pooldoctor.app.instrument import PoolTracker, tracker_for
from pooldoctor.app.prometheus import labelled_engines, pool_reading
from pooldoctor.app.status import pool_status

POOL_ATTRIBUTE = "db.client.connection.pool.name"
STATE_ATTRIBUTE = "db.client.connection.state"
HISTOGRAMS = {
    "create_time": "The time it took to create a new connection.",
    "wait_time": "The time it took to obtain an open connection from the pool.",
    "use_time": "The time between borrowing a connection and returning it to the pool.",
}


class OtelPoolMetrics:
    """The semantic-convention instruments on one meter, fed by the instrumented engines."""

    def __init__(self, meter: Any, engines: Mapping[str, Any] | None) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        self.engines = engines
        self._observation = Observation
        self._attached: set[int] = set()
        self.histograms = {
            name: meter.create_histogram(
                f"db.client.connection.{name}",
                unit="s",
                description=text,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
            for name, text in HISTOGRAMS.items()
        }

        def gauge(key: str) -> Any:
            def callback(options: CallbackOptions) -> Iterator[Observation]:
                return self._observe(key)

            return [callback]

        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            gauge("count"),
            unit="{connection}",
            description="The number of connections that are currently in the state described "
            "by the state attribute.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            gauge("max"),
            unit="{connection}",
            description="The maximum number of open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.idle.max",
            gauge("idle_max"),
            unit="{connection}",
            description="The maximum number of idle open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            gauge("pending"),
            unit="{request}",
            description="The number of current pending requests for an open connection.",
        )
        meter.create_observable_counter(
            "db.client.connection.timeouts",
            gauge("timeouts"),
            unit="{timeout}",
            description="The number of connection timeouts that have occurred trying to obtain "
            "a connection from the pool.",
        )

    def _attach(self, label: str, tracker: PoolTracker) -> None:
        if id(tracker) in self._attached:
            return
        self._attached.add(id(tracker))
        attributes = {POOL_ATTRIBUTE: label}
        for name, instrument in self.histograms.items():
            getattr(tracker, name).observers.append(
                lambda seconds, record=instrument.record: record(seconds, attributes)
            )

    def _observe(self, key: str) -> Iterator[Any]:
        for label, engine in labelled_engines(self.engines).items():
            tracker = tracker_for(engine)
            if tracker is not None:
                self._attach(label, tracker)
            reading = pool_reading(pool_status(engine, max_holders=0), tracker)
            if key == "count":
                for state, value in (("used", reading.used), ("idle", reading.idle)):
                    if value is not None:
                        yield self._observation(
                            value, {POOL_ATTRIBUTE: label, STATE_ATTRIBUTE: state}
                        )
                continue
            value = getattr(reading, key)
            if value is not None:
                yield self._observation(value, {POOL_ATTRIBUTE: label})


def register_otel(
    meter_provider: Any = None, engines: Mapping[str, Any] | None = None
) -> OtelPoolMetrics:
    """Record the pool instruments on `meter_provider` (default: the global MeterProvider)."""
    try:
        from opentelemetry import metrics
    except ImportError:
        raise RuntimeError(
            "the OpenTelemetry metrics API is not installed: pip install 'pooldoctor[otel]'"
        ) from None
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    export = OtelPoolMetrics(provider.get_meter("pooldoctor", __version__), engines)
    for label, engine in labelled_engines(engines).items():
        tracker = tracker_for(engine)
        if tracker is not None:
            export._attach(label, tracker)
    return export
