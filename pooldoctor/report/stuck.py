"""Work still in progress at collection: open transactions, long queries, lock waits, checkouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pooldoctor.durations import format_duration
from pooldoctor.evidence import ActivitySample, Backend, Evidence, PoolInstance
from pooldoctor.readings.app import is_client
from pooldoctor.readings.text import instance_label, preview
from pooldoctor.readings.thresholds import SLOW_QUERY_SECONDS, STUCK_SECONDS
from pooldoctor.report.textfmt import as_utc

# Idle time is worth stating separately only when the transaction did work well after it began.
IDLE_DETAIL_MIN_SECONDS = 5.0


@dataclass(frozen=True)
class StuckWork:
    """One piece of work that began before collection and had not finished when seen."""

    started: datetime
    inferred: bool
    what: str  # transaction | query | lock wait | checkout
    who: str  # "pid 4242 (api)" or the checkout origin
    source: str
    seen_at: datetime
    detail: str
    connected: datetime | None = None  # backend_start, for sessions

    @property
    def age_seconds(self) -> float:
        return (self.seen_at - self.started).total_seconds()


def backend_label(backend: Backend) -> str:
    """pid 4242 (api) — the application name, else user@database, when known."""
    if backend.application_name:
        return f"pid {backend.pid} ({backend.application_name})"
    if backend.usename:
        where = f"@{backend.datname}" if backend.datname else ""
        return f"pid {backend.pid} ({backend.usename}{where})"
    return f"pid {backend.pid}"


def latest_activity(evidence: Evidence) -> ActivitySample | None:
    """The last pg_stat_activity snapshot: the state of the server at collection time."""
    if evidence.postgres is None or not evidence.postgres.samples:
        return None
    return max(evidence.postgres.samples, key=lambda sample: as_utc(sample.at))


def _query_preview(backend: Backend) -> str:
    if backend.query_hidden:
        return "query hidden (insufficient privilege)"
    if not backend.query:
        return "no query text"
    return preview(backend.query) or "no query text"


def stuck_sessions(evidence: Evidence) -> list[StuckWork]:
    """Sessions in the latest snapshot with an old idle transaction, a long query or a lock wait."""
    sample = latest_activity(evidence)
    if sample is None:
        return []
    seen = as_utc(sample.at)
    found: list[StuckWork] = []
    for backend in sample.backends:
        if not is_client(backend):
            continue
        state = backend.state or ""
        if backend.wait_event_type == "Lock" and backend.query_start is not None:
            blockers = ", ".join(str(pid) for pid in backend.blocking_pids) or "unknown"
            detail = (
                f"waiting on {backend.wait_event or 'a lock'}, blocked by pid {blockers}: "
                f"{_query_preview(backend)}"
            )
            found.append(
                StuckWork(
                    as_utc(backend.query_start),
                    True,
                    "lock wait",
                    backend_label(backend),
                    "postgres",
                    seen,
                    detail,
                    backend.backend_start and as_utc(backend.backend_start),
                )
            )
        elif state.startswith("idle in transaction") and backend.xact_start is not None:
            started = as_utc(backend.xact_start)
            if seen - started < timedelta(seconds=STUCK_SECONDS):
                continue
            idle_for = ""
            if backend.state_change is not None:
                idle = as_utc(backend.state_change)
                if idle - started > timedelta(seconds=IDLE_DETAIL_MIN_SECONDS):
                    idle_for = f" for the last {format_duration((seen - idle).total_seconds())}"
            detail = f"{state}{idle_for}; last query: {_query_preview(backend)}"
            found.append(
                StuckWork(
                    started,
                    False,
                    "transaction",
                    backend_label(backend),
                    "postgres",
                    seen,
                    detail,
                    backend.backend_start and as_utc(backend.backend_start),
                )
            )
        elif state == "active" and backend.query_start is not None:
            started = as_utc(backend.query_start)
            if seen - started < timedelta(seconds=SLOW_QUERY_SECONDS):
                continue
            found.append(
                StuckWork(
                    started,
                    False,
                    "query",
                    backend_label(backend),
                    "postgres",
                    seen,
                    _query_preview(backend),
                    backend.backend_start and as_utc(backend.backend_start),
                )
            )
    return sorted(found, key=lambda work: work.started)


def _held_checkouts(instance: PoolInstance) -> list[StuckWork]:
    with_holders = [sample for sample in instance.samples if sample.holders]
    if not with_holders:
        return []
    sample = max(with_holders, key=lambda s: as_utc(s.at))
    seen = as_utc(sample.at)
    return [
        StuckWork(
            seen - timedelta(seconds=holder.age_seconds),
            True,
            "checkout",
            holder.origin,
            instance_label(instance.url),
            seen,
            f"thread {holder.thread}" if holder.thread else "",
        )
        for holder in sample.holders
    ]


def held_checkouts(evidence: Evidence) -> list[StuckWork]:
    """Checkouts the app reported as still held, dated collected-at minus age (oldest first)."""
    found = [work for instance in evidence.pools for work in _held_checkouts(instance)]
    return sorted(found, key=lambda work: work.started)
