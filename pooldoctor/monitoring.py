"""Monitoring-plugin verdict: thresholds over one capture, one status line with perfdata."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from pooldoctor.durations import format_duration
from pooldoctor.evidence import (
    ActivitySample,
    Evidence,
    LogEvent,
    PoolInstance,
    SourceState,
)
from pooldoctor.findings import Status

PLUGIN_NAME = "POOLDOCTOR"
# Worst first: a CRITICAL instance outranks one that could not be read (Monitoring Plugins habit).
STATUS_ORDER = (Status.CRITICAL, Status.WARNING, Status.UNKNOWN, Status.OK)
IDLE_IN_TRANSACTION_STATES = ("idle in transaction", "idle in transaction (aborted)")
CLIENT_BACKEND = "client backend"
POOL_TIMEOUT_EVENTS = (LogEvent.POOL_TIMEOUT, LogEvent.PSYCOPG_POOL_TIMEOUT)
_LABEL_FORBIDDEN = str.maketrans({"'": "_", "=": "_", "|": "_"})


@dataclass(frozen=True)
class Thresholds:
    """`check` thresholds: pool fill in percent; the optional ones are off when None."""

    fill_warning: float = 80.0
    fill_critical: float = 95.0
    waiting_warning: int | None = None
    waiting_critical: int | None = None
    idle_in_transaction_warning: float | None = None  # seconds
    idle_in_transaction_critical: float | None = None


@dataclass(frozen=True)
class Metric:
    """One perfdata item: 'label'=value[unit];[warn];[crit];[min];[max]."""

    label: str
    value: float
    unit: str = ""
    warning: float | None = None
    critical: float | None = None
    minimum: float | None = None
    maximum: float | None = None

    def perfdata(self) -> str:
        """The Monitoring Plugins perfdata form (trailing empty fields dropped)."""
        fields = [
            f"{format_number(self.value)}{self.unit}",
            *(
                "" if bound is None else format_number(bound)
                for bound in (self.warning, self.critical, self.minimum, self.maximum)
            ),
        ]
        while fields[-1] == "":
            fields.pop()
        return f"'{self.label.translate(_LABEL_FORBIDDEN)}'=" + ";".join(fields)


@dataclass(frozen=True)
class Part:
    """The verdict on one source: a state, a short phrase, and its metrics."""

    status: Status
    text: str
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The plugin's answer: the worst state of all parts, and the one line to print."""

    status: Status
    parts: tuple[Part, ...]

    def line(self) -> str:
        """`POOLDOCTOR STATE - summary | perfdata`, always on one line."""
        ranked = sorted(self.parts, key=lambda part: STATUS_ORDER.index(part.status))
        summary = "; ".join(part.text for part in ranked) or "nothing to check"
        perfdata = " ".join(metric.perfdata() for part in self.parts for metric in part.metrics)
        text = f"{PLUGIN_NAME} {self.status.value.upper()} - {summary}"
        if perfdata:
            text += f" | {perfdata}"
        return " ".join(text.split())


def format_number(value: float) -> str:
    """Integers without a decimal point, other values to two decimals (perfdata-safe).

    >>> format_number(28.0), format_number(12.345), format_number(0.5)
    ('28', '12.35', '0.5')
    """
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0")


def worst(statuses: list[Status]) -> Status:
    """The most severe state (CRITICAL > WARNING > UNKNOWN > OK); OK when empty."""
    return min(statuses, key=STATUS_ORDER.index, default=Status.OK)


def above(value: float, warning: float | None, critical: float | None) -> Status:
    """Monitoring Plugins threshold semantics: a value strictly above a bound alerts."""
    if critical is not None and value > critical:
        return Status.CRITICAL
    if warning is not None and value > warning:
        return Status.WARNING
    return Status.OK


def count_bound(percent: float, capacity: int) -> int:
    """The largest whole count not above `percent` of `capacity` (28.5 of 30 -> 28).

    Checked-out counts are whole numbers, so "count > this bound" is exactly "fill > percent".
    """
    return math.floor(percent * capacity / 100 + 1e-9)


def instance_labels(pools: tuple[PoolInstance, ...]) -> list[str]:
    """Perfdata prefixes: none for one instance, else host:port (plus the path when shared)."""
    if len(pools) == 1:
        return [""]
    hosts = [urlsplit(pool.url).netloc.rpartition("@")[2] or pool.url for pool in pools]
    counts = Counter(hosts)
    return [
        f"{host}{urlsplit(pool.url).path if counts[host] > 1 else ''} "
        for host, pool in zip(hosts, pools, strict=True)
    ]


def pool_part(pool: PoolInstance, label: str, thresholds: Thresholds) -> Part:
    """Judge one instance's latest sample: fill against percent bounds, waiting against counts."""
    name = label.strip() or "pool"
    if not pool.samples:
        reason = pool.errors[-1].error if pool.errors else "no sample taken"
        return Part(Status.UNKNOWN, f"{name}: {reason}")
    sample = pool.samples[-1]
    capacity = sample.capacity
    metrics: list[Metric] = []
    statuses: list[Status] = []
    if sample.checked_out is None or capacity is None or capacity <= 0:
        known = "checked-out count" if sample.checked_out is None else "capacity"
        text = f"{name}: pool {known} not reported"
        statuses.append(Status.UNKNOWN)
        if sample.checked_out is not None:
            metrics.append(Metric(f"{label}checked_out", sample.checked_out, minimum=0))
    else:
        fill = 100.0 * sample.checked_out / capacity
        statuses.append(above(fill, thresholds.fill_warning, thresholds.fill_critical))
        text = f"{name} {sample.checked_out}/{capacity} checked out ({fill:.0f}%)"
        metrics.append(
            Metric(
                f"{label}checked_out",
                sample.checked_out,
                warning=count_bound(thresholds.fill_warning, capacity),
                critical=count_bound(thresholds.fill_critical, capacity),
                minimum=0,
                maximum=capacity,
            )
        )
    if sample.waiting is not None:
        statuses.append(
            above(sample.waiting, thresholds.waiting_warning, thresholds.waiting_critical)
        )
        text += f", {sample.waiting} waiting"
        metrics.append(
            Metric(
                f"{label}waiting",
                sample.waiting,
                warning=thresholds.waiting_warning,
                critical=thresholds.waiting_critical,
                minimum=0,
            )
        )
    elif thresholds.waiting_warning is not None or thresholds.waiting_critical is not None:
        statuses.append(Status.UNKNOWN)  # asked to judge a count this endpoint does not give
        text += ", waiting not reported"
    timeouts = sample.counters.get("pool_timeouts")
    if timeouts is not None:
        metrics.append(Metric(f"{label}timeouts", timeouts, unit="c", minimum=0))
    return Part(worst(statuses), text, tuple(metrics))


def _idle_in_transaction(sample: ActivitySample) -> tuple[float, int, str | None] | None:
    """The longest idle-in-transaction client session: (seconds, pid, application)."""
    ages = [
        ((sample.at - backend.state_change).total_seconds(), backend.pid, backend.application_name)
        for backend in sample.backends
        if backend.state in IDLE_IN_TRANSACTION_STATES and backend.state_change is not None
    ]
    return max(ages, default=None)


def postgres_part(evidence: Evidence, thresholds: Thresholds) -> Part | None:
    """Judge PostgreSQL: client backends against max_connections, oldest idle in transaction."""
    postgres = evidence.postgres
    if postgres is None:
        return None
    if not postgres.samples:
        source = next((s for s in evidence.sources if s.kind == "postgres"), None)
        reason = source.detail if source is not None else "no pg_stat_activity sample"
        return Part(Status.UNKNOWN, f"postgres: {reason}")
    sample = postgres.samples[-1]
    clients = sum(1 for backend in sample.backends if backend.backend_type == CLIENT_BACKEND)
    max_connections = postgres.settings.get("max_connections")
    maximum = float(max_connections) if max_connections and max_connections.isdigit() else None
    text = f"postgres {clients}" + (f"/{max_connections}" if maximum else "") + " backends"
    metrics = [Metric("backends", clients, minimum=0, maximum=maximum)]
    idle = _idle_in_transaction(sample)
    seconds = max(0.0, idle[0]) if idle is not None else 0.0
    status = above(
        seconds, thresholds.idle_in_transaction_warning, thresholds.idle_in_transaction_critical
    )
    if idle is not None:
        text += f", oldest idle in transaction {format_duration(seconds)} (pid {idle[1]}"
        text += f", {idle[2]})" if idle[2] else ")"
    metrics.append(
        Metric(
            "idle_in_transaction_oldest",
            round(seconds, 2),
            unit="s",
            warning=thresholds.idle_in_transaction_warning,
            critical=thresholds.idle_in_transaction_critical,
            minimum=0,
        )
    )
    return Part(status, text, tuple(metrics))


def pgbouncer_parts(evidence: Evidence) -> list[Part]:
    """Per PgBouncer: clients waiting for a server connection, and the longest wait."""
    parts = []
    for index, bouncer in enumerate(evidence.pgbouncers):
        name = "pgbouncer" if len(evidence.pgbouncers) == 1 else f"pgbouncer {index + 1}"
        if not bouncer.samples:
            reason = bouncer.connect_failure or (bouncer.errors[-1] if bouncer.errors else "")
            parts.append(Part(Status.UNKNOWN, f"{name}: {reason or 'no sample'}"))
            continue
        pools = bouncer.samples[-1].pools
        waiting = sum(pool.cl_waiting for pool in pools)
        longest = max((pool.maxwait_seconds for pool in pools), default=0.0)
        prefix = "" if len(evidence.pgbouncers) == 1 else f"{name} "
        parts.append(
            Part(
                Status.OK,
                f"{name} {waiting} client(s) waiting (longest {format_duration(longest)})",
                (
                    Metric(f"{prefix}pgbouncer_waiting", waiting, minimum=0),
                    Metric(f"{prefix}pgbouncer_maxwait", round(longest, 2), unit="s", minimum=0),
                ),
            )
        )
    return parts


def logs_part(evidence: Evidence) -> Part | None:
    """Pool timeouts counted in the logs (in the --since/--until window); unreadable is UNKNOWN."""
    if not evidence.logs:
        return None
    failed = [s for s in evidence.sources if s.kind == "log" and s.status is SourceState.ERROR]
    timeouts = sum(
        event.count
        for log in evidence.logs
        for event in log.events
        if event.event in POOL_TIMEOUT_EVENTS
    )
    metric = Metric("pool_timeouts", timeouts, unit="c", minimum=0)
    if failed:
        return Part(Status.UNKNOWN, f"log {failed[0].name}: {failed[0].detail}", (metric,))
    return Part(Status.OK, f"{timeouts} pool timeout(s) logged", (metric,))


def evaluate(evidence: Evidence, thresholds: Thresholds) -> Verdict:
    """The plugin verdict over one capture: every instance, PgBouncer, PostgreSQL, the logs."""
    parts = [
        pool_part(pool, label, thresholds)
        for pool, label in zip(evidence.pools, instance_labels(evidence.pools), strict=True)
    ]
    parts.extend(pgbouncer_parts(evidence))
    for extra in (postgres_part(evidence, thresholds), logs_part(evidence)):
        if extra is not None:
            parts.append(extra)
    if not parts:
        parts.append(Part(Status.UNKNOWN, "no live source or log collected"))
    return Verdict(worst([part.status for part in parts]), tuple(parts))
