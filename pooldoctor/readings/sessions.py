"""Trends of the app's sessions across pg_stat_activity samples: what persists, what rotates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Backend, Evidence
from pooldoctor.jsonio import format_utc
from pooldoctor.readings.app import (
    ACTIVE,
    IDLE,
    IDLE_IN_TRANSACTION,
    AppIdentity,
    app_backends,
    app_identity,
)
from pooldoctor.readings.text import fmt_clock, preview
from pooldoctor.readings.thresholds import MAX_LISTED


def seconds_between(later: datetime | None, earlier: datetime | None) -> float | None:
    """Seconds from earlier to later, or None when either is unknown."""
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


@dataclass(frozen=True)
class HeldSession:
    """One app backend that sits idle (in transaction or not), at its latest sighting."""

    backend: Backend
    since: datetime
    age_seconds: float
    samples_seen: int

    @property
    def pid(self) -> int:
        return self.backend.pid

    def as_evidence(self) -> dict[str, Any]:
        return {
            "pid": self.backend.pid,
            "state": self.backend.state,
            "since": format_utc(self.since),
            "age_seconds": round(self.age_seconds, 1),
            "samples_seen": self.samples_seen,
            "query": preview(self.backend.query),
        }


@dataclass(frozen=True)
class SessionTrend:
    """The app's backends over the samples (latest sample last)."""

    app: AppIdentity
    samples: int
    span_seconds: float
    latest: tuple[Backend, ...]
    latest_at: datetime
    idle_in_tx: tuple[HeldSession, ...]  # latest sample, oldest first
    idle: tuple[HeldSession, ...]  # latest sample, not in a transaction, oldest first
    persistent_in_tx: tuple[HeldSession, ...]  # same pid and xact_start in every sample
    persistent_idle: tuple[HeldSession, ...]  # same pid and state_change in every sample
    rotated_in_tx: int  # (pid, xact_start) pairs seen in some samples but not all
    in_tx_per_sample: tuple[int, ...]
    per_sample: tuple[tuple[datetime, tuple[Backend, ...]], ...] = ()  # (at, app backends)

    @property
    def active(self) -> list[Backend]:
        return [b for b in self.latest if b.state == ACTIVE]

    @property
    def multi_sample(self) -> bool:
        return self.samples >= 2


def transaction_start(backend: Backend) -> datetime | None:
    """xact_start, or state_change for an aborted transaction (its xact_start reads NULL)."""
    return backend.xact_start or backend.state_change


def _held(backend: Backend, at: datetime, in_tx: bool, seen: int) -> HeldSession | None:
    since = transaction_start(backend) if in_tx else backend.state_change
    age = seconds_between(at, since)
    if since is None or age is None:
        return None
    return HeldSession(backend, since, age, seen)


def session_trend(evidence: Evidence) -> SessionTrend | None:
    """None when PostgreSQL was not sampled or no app backend could be told apart."""
    pg = evidence.postgres
    app = app_identity(evidence)
    if pg is None or app is None:
        return None
    samples = pg.samples
    per_sample_in_tx: list[set[tuple[int, datetime | None]]] = []
    per_sample_idle: list[set[tuple[int, datetime | None]]] = []
    per_sample: list[tuple[datetime, tuple[Backend, ...]]] = []
    for sample in samples:
        backends = app_backends(sample, app)
        per_sample.append((sample.at, tuple(backends)))
        per_sample_in_tx.append(
            {(b.pid, transaction_start(b)) for b in backends if b.state in IDLE_IN_TRANSACTION}
        )
        per_sample_idle.append({(b.pid, b.state_change) for b in backends if b.state == IDLE})
    last = samples[-1]
    latest = app_backends(last, app)
    seen_in_tx = {
        key: sum(key in s for s in per_sample_in_tx) for key in set().union(*per_sample_in_tx)
    }
    seen_idle = {key: sum(key in s for s in per_sample_idle) for key in per_sample_idle[-1]}
    idle_in_tx: list[HeldSession] = []
    idle: list[HeldSession] = []
    for backend in latest:
        if backend.state in IDLE_IN_TRANSACTION:
            held = _held(
                backend, last.at, True, seen_in_tx.get((backend.pid, transaction_start(backend)), 1)
            )
            if held:
                idle_in_tx.append(held)
        elif backend.state == IDLE:
            held = _held(
                backend, last.at, False, seen_idle.get((backend.pid, backend.state_change), 1)
            )
            if held:
                idle.append(held)
    count = len(samples)
    idle_in_tx.sort(key=lambda h: -h.age_seconds)
    idle.sort(key=lambda h: -h.age_seconds)
    return SessionTrend(
        app=app,
        samples=count,
        span_seconds=(last.at - samples[0].at).total_seconds(),
        latest=tuple(latest),
        latest_at=last.at,
        idle_in_tx=tuple(idle_in_tx),
        idle=tuple(idle),
        persistent_in_tx=tuple(h for h in idle_in_tx if count >= 2 and h.samples_seen == count),
        persistent_idle=tuple(h for h in idle if count >= 2 and h.samples_seen == count),
        rotated_in_tx=sum(1 for seen in seen_in_tx.values() if seen < count),
        in_tx_per_sample=tuple(len(s) for s in per_sample_in_tx),
        per_sample=tuple(per_sample),
    )


def held_in_tx(at: datetime, backends: tuple[Backend, ...], min_age: float) -> list[HeldSession]:
    """Backends idle in transaction for at least `min_age` seconds at `at`, oldest first."""
    held = [
        h
        for b in backends
        if b.state in IDLE_IN_TRANSACTION
        and (h := _held(b, at, True, 1)) is not None
        and h.age_seconds >= min_age
    ]
    return sorted(held, key=lambda h: -h.age_seconds)


def describe_oldest(sessions: tuple[HeldSession, ...] | list[HeldSession]) -> str:
    """'oldest pid 4242 since 09:15:23Z (14m37s)'."""
    oldest = sessions[0]
    age = format_duration(oldest.age_seconds)
    return f"oldest pid {oldest.pid} since {fmt_clock(oldest.since)} ({age})"


def sessions_evidence(
    sessions: tuple[HeldSession, ...] | list[HeldSession],
) -> list[dict[str, Any]]:
    return [s.as_evidence() for s in sessions[:MAX_LISTED]]


def ratchets(values: list[int]) -> bool:
    """Never decreases and ends higher than it started."""
    return (
        len(values) >= 2 and all(b >= a for a, b in pairwise(values)) and (values[-1] > values[0])
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


NICE_TIMEOUTS = (60, 120, 300, 600, 900, 1800, 3600)  # round suggestions to values people set
IDLE_TX_TIMEOUT_FACTOR = 2.0  # a backstop twice the longest legitimate idle-in-transaction age
# With no idle-in-transaction session observed to size it by: a backstop for forgotten ones.
DEFAULT_IDLE_TX_TIMEOUT = 300


def nice_timeout(seconds: float) -> int:
    """Round a suggested timeout up to a conventional value between 1 min and 1 h."""
    for value in NICE_TIMEOUTS:
        if seconds <= value:
            return value
    return NICE_TIMEOUTS[-1]


def legitimate_idle_tx_ages(trend: SessionTrend, leaked: frozenset[int]) -> list[float]:
    """Ages of the app's idle-in-transaction sessions in every sample, leaked ones left out."""
    return [
        h.age_seconds
        for at, backends in trend.per_sample
        for h in held_in_tx(at, backends, 0.0)
        if h.pid not in leaked
    ]


def idle_tx_timeout_suggestion(legitimate_ages: Sequence[float]) -> int:
    """The one idle_in_transaction_session_timeout every finding suggests: twice the longest
    legitimate age seen (rounded up to a conventional value), DEFAULT_IDLE_TX_TIMEOUT if none."""
    if not legitimate_ages:
        return DEFAULT_IDLE_TX_TIMEOUT
    return nice_timeout(math.ceil(max(legitimate_ages) * IDLE_TX_TIMEOUT_FACTOR))
