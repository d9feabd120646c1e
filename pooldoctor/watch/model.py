"""What one round of `pooldoctor watch` shows, derived purely from evidence and its diagnosis."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from pooldoctor.evidence import Backend, Evidence, PoolInstance, PoolSample, SourceState
from pooldoctor.findings import Diagnosis, Severity, Status
from pooldoctor.readings.app import IDLE, is_client
from pooldoctor.sanitize import strip_controls
from pooldoctor.watch.loginstance import LogRates, rates_by_url
from pooldoctor.watch.rate import RATE_WINDOW_SECONDS, Rate

TIMEOUT_COUNTERS = ("pool_timeouts", "requests_errors")
TOP_SESSIONS = 10
TOP_HOLDERS_PER_INSTANCE = 3


class SortKey(StrEnum):
    """How the holders / stuck sessions table is ordered (the `s` key cycles)."""

    AGE = "age"
    PID = "pid"
    APPLICATION = "application"
    STATE = "state"

    def next(self) -> SortKey:
        """The following key, wrapping around."""
        keys = list(SortKey)
        return keys[(keys.index(self) + 1) % len(keys)]


@dataclass(frozen=True)
class PoolRow:
    """One app instance's latest pool reading."""

    instance: str
    checked_out: int | None = None
    capacity: int | None = None
    waiting: int | None = None
    timeouts: Rate | None = None
    error: str | None = None
    timeouts_from_log: bool = False
    timeouts_app_wide: bool = False  # the log's rate for the whole app: its lines name no instance

    @property
    def fill(self) -> float | None:
        """Checked-out share of capacity, 0..1, when both are known."""
        if self.checked_out is None or not self.capacity:
            return None
        return self.checked_out / self.capacity


@dataclass(frozen=True)
class BackendGroup:
    """Server backends of one application in one state."""

    application: str
    state: str
    count: int
    oldest_transaction_seconds: float | None
    lock_waits: int


@dataclass(frozen=True)
class SessionRow:
    """A holder or stuck session: who, how long, and the scoped command to end it (never run)."""

    what: str
    who: str
    application: str
    state: str
    age_seconds: float
    detail: str
    pid: int | None = None
    command: str | None = None


@dataclass(frozen=True)
class Leading:
    """The current most probable cause and its runbook."""

    title: str
    severity: Severity
    runbook: str
    summary: str


@dataclass(frozen=True)
class WatchView:
    """Everything one refresh shows."""

    at: datetime
    round: int
    status: Status
    pools: tuple[PoolRow, ...]
    groups: tuple[BackendGroup, ...]
    sessions: tuple[SessionRow, ...]
    leading: Leading | None
    problems: tuple[str, ...]
    max_connections: int | None = None
    # Log timeouts whose records name no watched instance (per-instance rates only).
    log_unattributed: Rate | None = None


def timeout_rate(samples: tuple[PoolSample, ...]) -> Rate | None:
    """Growth of the pool's timeout counter over about the last minute; a full minute once the
    samples reach further back than that (pass more than a minute of them when there are)."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    key = next((k for k in TIMEOUT_COUNTERS if k in last.counters), None)
    if key is None:
        return None
    counted = [s for s in samples if key in s.counters]
    recent = [s for s in counted if (last.at - s.at).total_seconds() <= RATE_WINDOW_SECONDS]
    first = recent[0]
    elapsed = (last.at - first.at).total_seconds()
    delta = last.counters[key] - first.counters[key]
    if elapsed <= 0 or delta < 0:
        return None
    watched = (last.at - counted[0].at).total_seconds()
    return Rate(delta, elapsed, full_minute=watched >= RATE_WINDOW_SECONDS)


def pool_row(pool: PoolInstance, rate_samples: tuple[PoolSample, ...] | None = None) -> PoolRow:
    """The latest reading of one instance, or why there is none; its timeout rate from
    `rate_samples` when given (at least the last minute of them), else from its own samples."""
    if not pool.samples:
        error = pool.errors[-1].error if pool.errors else "no sample yet"
        return PoolRow(strip_controls(pool.url), error=strip_controls(error))
    last = pool.samples[-1]
    failed_after = pool.errors and pool.errors[-1].at > last.at
    return PoolRow(
        strip_controls(pool.url),
        checked_out=last.checked_out,
        capacity=last.capacity,
        waiting=last.waiting,
        timeouts=timeout_rate(pool.samples if rate_samples is None else rate_samples),
        error=strip_controls(pool.errors[-1].error) if failed_after else None,
    )


def backend_groups(backends: tuple[Backend, ...], at: datetime) -> list[BackendGroup]:
    """Client backends by application and state, most numerous first."""
    grouped: dict[tuple[str, str], list[Backend]] = defaultdict(list)
    for backend in backends:
        if is_client(backend):
            key = (
                strip_controls(backend.application_name or "(none)"),
                strip_controls(backend.state or "(unknown)"),
            )
            grouped[key].append(backend)
    groups = []
    for (application, state), members in grouped.items():
        starts = [b.xact_start for b in members if b.xact_start is not None]
        oldest = (at - min(starts)).total_seconds() if starts else None
        waits = sum(1 for b in members if b.wait_event_type == "Lock")
        groups.append(BackendGroup(application, state, len(members), oldest, waits))
    return sorted(groups, key=lambda g: (-g.count, g.application, g.state))


def scoped_command(backend: Backend) -> str | None:
    """The cancel/terminate call for exactly this transaction or query, safe against pid reuse."""
    state = backend.state or ""
    if state.startswith("idle in transaction") and backend.xact_start is not None:
        return (
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {backend.pid} "
            f"AND xact_start = '{backend.xact_start.isoformat()}';"
        )
    if state == "active" and backend.query_start is not None:
        return (
            f"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = {backend.pid} "
            f"AND query_start = '{backend.query_start.isoformat()}';"
        )
    return None


def _session_row(backend: Backend, at: datetime) -> SessionRow | None:
    state = backend.state or ""
    if state.startswith("idle in transaction") and backend.xact_start is not None:
        what, since = "open transaction", backend.xact_start
    elif backend.wait_event_type == "Lock" and backend.query_start is not None:
        what, since = "lock wait", backend.query_start
    elif state == "active" and backend.query_start is not None:
        what, since = "query", backend.query_start
    else:
        return None
    detail = backend.query or ("query hidden" if backend.query_hidden else "")
    if what == "lock wait":
        blockers = ", ".join(str(pid) for pid in backend.blocking_pids) or "?"
        detail = f"blocked by pid {blockers}: {detail}"
    return SessionRow(
        what=what,
        who=f"pid {backend.pid}",
        application=strip_controls(backend.application_name or ""),
        state=strip_controls(state),
        age_seconds=max(0.0, (at - since).total_seconds()),
        detail=" ".join(strip_controls(detail).split()),
        pid=backend.pid,
        command=scoped_command(backend),
    )


def _holder_rows(pool: PoolInstance) -> list[SessionRow]:
    if not pool.samples:
        return []
    rows = []
    for holder in pool.samples[-1].holders[:TOP_HOLDERS_PER_INSTANCE]:
        finished = " (its thread has finished)" if holder.thread_alive is False else ""
        rows.append(
            SessionRow(
                what="checkout",
                who=strip_controls(holder.origin),
                application=strip_controls(pool.url),
                state="checked out",
                age_seconds=holder.age_seconds,
                detail=strip_controls(f"thread {holder.thread or '?'}{finished}"),
            )
        )
    return rows


def _order(key: SortKey, row: SessionRow) -> tuple[str, float]:
    if key is SortKey.PID:
        return ("", float(row.pid) if row.pid is not None else math.inf)
    if key is SortKey.APPLICATION:
        return (row.application, -row.age_seconds)
    if key is SortKey.STATE:
        return (row.state, -row.age_seconds)
    return ("", -row.age_seconds)


def sessions(evidence: Evidence, sort: SortKey = SortKey.AGE) -> list[SessionRow]:
    """Holders reported by the apps and busy server sessions, ordered by `sort`, top few."""
    rows = [row for pool in evidence.pools for row in _holder_rows(pool)]
    postgres = evidence.postgres
    if postgres is not None and postgres.samples:
        sample = postgres.samples[-1]
        rows.extend(
            row
            for backend in sample.backends
            if is_client(backend) and backend.state != IDLE
            for row in [_session_row(backend, sample.at)]
            if row is not None
        )
    rows.sort(key=lambda row: _order(sort, row))
    return rows[:TOP_SESSIONS]


def leading_finding(diagnosis: Diagnosis) -> Leading | None:
    """The top-ranked finding when it is a warning or worse."""
    if not diagnosis.findings:
        return None
    top = diagnosis.findings[0]
    if top.severity is Severity.INFO:
        return None
    return Leading(
        strip_controls(top.title), top.severity, top.runbook, strip_controls(top.summary)
    )


def with_log_rate(row: PoolRow, rate: Rate | None, app_wide: bool = False) -> PoolRow:
    """The row, its missing timeout rate taken from the app's log lines when they give one."""
    if row.timeouts is not None or rate is None or row.checked_out is None:
        return row
    return replace(row, timeouts=rate, timeouts_from_log=True, timeouts_app_wide=app_wide)


def _log_rows(
    pools: tuple[PoolInstance, ...],
    log_rates: LogRates | None,
    rate_pools: tuple[PoolInstance, ...] | None,
) -> tuple[tuple[PoolRow, ...], Rate | None]:
    """Pool rows with the log's rates: per instance where its records say which, else app-wide."""
    minute = {pool.url: pool.samples for pool in rate_pools or ()}
    rows = tuple(pool_row(pool, minute.get(pool.url)) for pool in pools)
    if log_rates is None:
        return rows, None
    laid = rates_by_url(log_rates, tuple(pool.url for pool in pools))
    if laid.per_url is None:
        return tuple(with_log_rate(row, laid.app_wide, app_wide=True) for row in rows), None
    per_url = laid.per_url
    with_rates = tuple(
        with_log_rate(row, per_url[pool.url]) for row, pool in zip(rows, pools, strict=True)
    )
    return with_rates, laid.unattributed


def build_view(
    evidence: Evidence,
    diagnosis: Diagnosis,
    round_number: int,
    sort: SortKey = SortKey.AGE,
    log_rates: LogRates | None = None,
    rate_pools: tuple[PoolInstance, ...] | None = None,
) -> WatchView:
    """The view of one round: pools, server backends, holders and stuck sessions, leading cause.

    `rate_pools`: the same instances' samples over more than the last minute, for timeout rates
    when `evidence` holds fewer rounds than that.
    """
    groups: list[BackendGroup] = []
    max_connections = None
    postgres = evidence.postgres
    if postgres is not None:
        value = postgres.settings.get("max_connections", "")
        max_connections = int(value) if value.isdigit() else None
        if postgres.samples:
            sample = postgres.samples[-1]
            groups = backend_groups(sample.backends, sample.at)
    problems = tuple(
        strip_controls(f"{source.kind} {source.name}: {source.detail}")
        for source in evidence.sources
        if source.status is SourceState.ERROR
    )
    pools, log_unattributed = _log_rows(evidence.pools, log_rates, rate_pools)
    return WatchView(
        at=evidence.collected_at,
        round=round_number,
        status=diagnosis.status,
        pools=pools,
        groups=tuple(groups),
        sessions=tuple(sessions(evidence, sort)),
        leading=leading_finding(diagnosis),
        problems=problems,
        max_connections=max_connections,
        log_unattributed=log_unattributed,
    )
