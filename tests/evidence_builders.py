"""Concise builders of Evidence for check tests: absolute times around a fixed NOW."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    ConnectFailure,
    Evidence,
    Holder,
    LogEvent,
    LogEventSummary,
    LogFileEvidence,
    MinuteCount,
    PoolConfig,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    SourceState,
    SourceStatus,
)

NOW = datetime(2026, 11, 21, 9, 45, 0, tzinfo=UTC)
SAMPLE_TIMES = (NOW - timedelta(seconds=20), NOW - timedelta(seconds=10), NOW)
HEALTHY_SETTINGS = {
    "max_connections": "100",
    "superuser_reserved_connections": "3",
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "5min",
    "idle_session_timeout": "0",
    "lock_timeout": "0",
}


def ago(seconds: float, now: datetime = NOW) -> datetime:
    return now - timedelta(seconds=seconds)


def backend(
    pid: int,
    state: str = "idle",
    *,
    app: str | None = "api",
    user: str | None = "app",
    xact_start: datetime | None = None,
    query_start: datetime | None = None,
    state_change: datetime | None = None,
    wait_event_type: str | None = None,
    wait_event: str | None = None,
    blocking: Sequence[int] = (),
    query: str | None = "SELECT 1",
    backend_type: str | None = "client backend",
    client_addr: str | None = "10.0.0.5",
) -> Backend:
    """One pg_stat_activity row; state_change defaults to query_start."""
    return Backend(
        pid=pid,
        backend_type=backend_type,
        usename=user,
        datname="shop",
        application_name=app,
        client_addr=client_addr,
        state=state,
        backend_start=ago(3600),
        xact_start=xact_start,
        query_start=query_start,
        state_change=state_change or query_start,
        wait_event_type=wait_event_type,
        wait_event=wait_event,
        blocking_pids=tuple(blocking),
        query=query,
    )


def active(pid: int, at: datetime, seconds: float, **kwargs: Any) -> Backend:
    """An active statement that started `seconds` before `at`."""
    start = at - timedelta(seconds=seconds)
    return backend(pid, "active", xact_start=start, query_start=start, **kwargs)


def idle_in_tx(pid: int, since: datetime, **kwargs: Any) -> Backend:
    """Idle in transaction since `since` (the transaction and its last statement began there)."""
    return backend(
        pid,
        "idle in transaction",
        xact_start=since,
        query_start=since,
        **kwargs,
    )


def idle(pid: int, since: datetime, **kwargs: Any) -> Backend:
    return backend(pid, "idle", query_start=since, state_change=since, **kwargs)


def activity(at: datetime, backends: Iterable[Backend]) -> ActivitySample:
    return ActivitySample(at=at, backends=tuple(backends))


def postgres(
    *samples: ActivitySample,
    settings: dict[str, str] | None = None,
    connect_seconds: float | None = 0.01,
    connect_failure: ConnectFailure | None = None,
) -> PostgresEvidence:
    return PostgresEvidence(
        target="postgresql://pooldoctor@db:5432/shop",
        connect_seconds=connect_seconds,
        connect_failure=connect_failure,
        server_version="15.5",
        server_version_num=150005,
        current_user="pooldoctor",
        is_superuser=False,
        settings=dict(HEALTHY_SETTINGS if settings is None else settings),
        samples=samples,
    )


def pool_sample(
    at: datetime,
    checked_out: int,
    *,
    size: int = 20,
    max_overflow: int = 10,
    waiting: int | None = None,
    holders: Sequence[Holder] = (),
    counters: dict[str, float] | None = None,
) -> PoolSample:
    """A SQLAlchemy-style reading; overflow follows QueuePool (checked_out - size, >= -size)."""
    return PoolSample(
        at=at,
        payload_format="json",
        size=size,
        checked_out=checked_out,
        checked_in=max(0, size - checked_out),
        overflow=max(-size, checked_out - size),
        max_overflow=max_overflow,
        timeout=30.0,
        waiting=waiting,
        counters=dict(counters or {}),
        holders=tuple(holders),
    )


def pool(*samples: PoolSample, url: str = "http://api-1:8000/pool-status") -> PoolInstance:
    return PoolInstance(url=url, samples=samples)


def holders(
    origin: str,
    ages: Iterable[float],
    thread: str | None = None,
    thread_alive: bool | None = None,
) -> list[Holder]:
    return [
        Holder(origin=origin, age_seconds=age, thread=thread, thread_alive=thread_alive)
        for age in ages
    ]


def events(
    event: LogEvent,
    count: int,
    *,
    last: datetime,
    minutes: int = 1,
    examples: Sequence[str] = (),
) -> LogEventSummary:
    """`count` occurrences spread over `minutes` UTC minutes ending at `last`."""
    end = last.replace(second=0, microsecond=0)
    buckets = [end - timedelta(minutes=m) for m in reversed(range(minutes))]
    share, extra = divmod(count, minutes)
    per_minute = tuple(
        MinuteCount(minute, share + (1 if i < extra else 0)) for i, minute in enumerate(buckets)
    )
    return LogEventSummary(
        event=event,
        count=count,
        first=buckets[0],
        last=last,
        per_minute=tuple(m for m in per_minute if m.count),
        examples=tuple(examples),
    )


def log_file(*summaries: LogEventSummary, path: str = "/var/log/api/app.log") -> LogFileEvidence:
    firsts = [s.first for s in summaries if s.first]
    lasts = [s.last for s in summaries if s.last]
    return LogFileEvidence(
        path=path,
        flavor="python",
        lines=sum(s.count for s in summaries) + 100,
        timestamped_lines=sum(s.count for s in summaries) + 100,
        first=min(firsts) if firsts else None,
        last=max(lasts) if lasts else None,
        events=summaries,
    )


def config(**values: Any) -> PoolConfig:
    defaults: dict[str, Any] = {
        "files": ("/etc/api/db.env",),
        "pool_size": 20,
        "max_overflow": 10,
        "pool_timeout": 10.0,
        "pool_recycle": 1800.0,
        "pool_pre_ping": True,
        "statement_timeout": 30.0,
        "connect_timeout": 10.0,
        "workers": 2,
    }
    defaults.update(values)
    return PoolConfig(**defaults)


def evidence(
    *,
    pools: Sequence[PoolInstance] = (),
    pg: PostgresEvidence | None = None,
    logs: Sequence[LogFileEvidence] = (),
    cfg: PoolConfig | None = None,
    now: datetime = NOW,
    until: datetime | None = None,
) -> Evidence:
    """Evidence with one OK source status per source given."""
    sources = [SourceStatus(p.url, "pool_status", SourceState.OK) for p in pools]
    if pg is not None:
        state = SourceState.ERROR if pg.connect_failure and not pg.samples else SourceState.OK
        sources.append(SourceStatus(pg.target, "postgres", state))
    sources.extend(SourceStatus(f.path, "log", SourceState.OK) for f in logs)
    if cfg is not None:
        sources.append(SourceStatus("config", "config", SourceState.OK))
    return Evidence(
        collected_at=now,
        started_at=now - timedelta(seconds=25),
        pooldoctor_version="0.1.0",
        until=until,
        pools=tuple(pools),
        postgres=pg,
        logs=tuple(logs),
        config=cfg,
        sources=tuple(sources),
    )
