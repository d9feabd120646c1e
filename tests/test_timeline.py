"""The incident timeline and key times: bursts, pool transitions, stuck work, capping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    Evidence,
    Holder,
    LogEvent,
    LogEventSummary,
    LogFileEvidence,
    MinuteCount,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    SourceState,
    SourceStatus,
)
from pooldoctor.findings import Status
from pooldoctor.readings import read
from pooldoctor.report.keytimes import build_key_times
from pooldoctor.report.model import EntryKind, TimelineEntry
from pooldoctor.report.timeline import (
    MAX_STUCK_LISTED,
    MAX_TIMELINE_ENTRIES,
    build_timeline,
    find_bursts,
)

DAY = datetime(2026, 11, 21, tzinfo=UTC)
NOW = DAY.replace(hour=9, minute=45, second=10)
GENERATED = NOW + timedelta(seconds=2)
URL = "http://api-1.internal:8000/pool-status"
COUNTS_14_MIN = [2, 4, 6, 9, 12, 15, 18, 21, 24, 31, 22, 18, 16, 14]


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


def per_minute(start: datetime, counts: list[int]) -> tuple[MinuteCount, ...]:
    return tuple(MinuteCount(start + timedelta(minutes=i), c) for i, c in enumerate(counts) if c)


def log_file(path: str, *events: LogEventSummary) -> LogFileEvidence:
    return LogFileEvidence(path, "python", lines=100, timestamped_lines=100, events=events)


def summary(
    event: LogEvent, minutes: tuple[MinuteCount, ...], first: datetime, last: datetime
) -> LogEventSummary:
    return LogEventSummary(event, sum(m.count for m in minutes), first, last, minutes)


def evidence(**kwargs: object) -> Evidence:
    base: dict[str, object] = {
        "collected_at": NOW,
        "started_at": NOW - timedelta(seconds=30),
        "pooldoctor_version": "0.1.0",
    }
    base.update(kwargs)
    return Evidence(**base)  # type: ignore[arg-type]


def timeline(ev: Evidence, status: Status = Status.CRITICAL) -> tuple[TimelineEntry, ...]:
    entries, _omitted = build_timeline(read(ev), generated_at=GENERATED, status=status)
    return entries


def of_kind(entries: tuple[TimelineEntry, ...], kind: EntryKind) -> list[TimelineEntry]:
    return [e for e in entries if e.kind is kind]


def test_a_fourteen_minute_burst_becomes_one_entry() -> None:
    minutes = per_minute(at(9, 31), COUNTS_14_MIN)
    assert sum(COUNTS_14_MIN) == 212
    ev = evidence(
        logs=(
            log_file(
                "/var/log/app.log",
                summary(LogEvent.POOL_TIMEOUT, minutes, at(9, 31, 7), at(9, 44, 52)),
            ),
        )
    )
    logs = of_kind(timeline(ev), EntryKind.LOG)
    assert logs == [
        TimelineEntry(
            at(9, 31, 7),
            "app.log",
            "09:31–09:44 QueuePool timeouts: 212 in 14 min, peak 31/min at 09:40",
            EntryKind.LOG,
            until=at(9, 44, 52),
        )
    ]


def test_bursts_split_on_long_quiet_gaps_only() -> None:
    # Two quiet minutes (09:03, 09:04) keep one episode; three (09:08-09:10) split it.
    minutes = (
        MinuteCount(at(9, 1), 3),
        MinuteCount(at(9, 2), 1),
        MinuteCount(at(9, 5), 2),
        MinuteCount(at(9, 7), 5),
        MinuteCount(at(9, 11), 4),
        MinuteCount(at(9, 11), 1),  # the same minute reported twice is merged
    )
    bursts = find_bursts(minutes)
    assert [(b.first, b.last, b.total, b.span_minutes) for b in bursts] == [
        (at(9, 1), at(9, 7), 11, 7),
        (at(9, 11), at(9, 11), 5, 1),
    ]
    assert bursts[0].peak == MinuteCount(at(9, 7), 5)


def test_same_event_in_two_files_and_single_minute_bursts() -> None:
    first = summary(
        LogEvent.STATEMENT_TIMEOUT, per_minute(at(9, 10), [3]), at(9, 10, 5), at(9, 10, 50)
    )
    second = summary(
        LogEvent.STATEMENT_TIMEOUT, per_minute(at(9, 12), [1, 1]), at(9, 12, 1), at(9, 13, 2)
    )
    ev = evidence(logs=(log_file("/a/app.log", first), log_file("/b/worker.log", second)))
    logs = of_kind(timeline(ev), EntryKind.LOG)
    assert [(e.at, e.source, e.event) for e in logs] == [
        (at(9, 10, 5), "app.log", "statement timeouts: 3 in 1 min"),
        (
            at(9, 12, 1),
            "worker.log",
            "09:12–09:13 statement timeouts: 2 in 2 min, peak 1/min at 09:12",
        ),
    ]


def test_server_start_and_shutdown_are_listed_one_by_one() -> None:
    shutdown = summary(
        LogEvent.SERVER_SHUTDOWN, per_minute(at(9, 20), [1]), at(9, 20, 14), at(9, 20, 14)
    )
    start = LogEventSummary(
        LogEvent.SERVER_START,
        3,
        at(9, 0, 2),
        at(9, 20, 31),
        (MinuteCount(at(9, 0), 1), MinuteCount(at(9, 10), 1), MinuteCount(at(9, 20), 1)),
    )
    ev = evidence(logs=(log_file("/var/log/postgresql/postgresql-15-main.log", start, shutdown),))
    server = of_kind(timeline(ev), EntryKind.SERVER)
    assert [(e.at, e.event) for e in server] == [
        (at(9, 0, 2), "PostgreSQL ready to accept connections"),
        (at(9, 10), "PostgreSQL ready to accept connections"),
        (at(9, 20, 14), "PostgreSQL shutting down"),
        (at(9, 20, 31), "PostgreSQL ready to accept connections"),
    ]
    keys = {k.name: k for k in build_key_times(read(ev), GENERATED)}
    assert keys["first_error"].at is None  # server restarts are not errors
    assert keys["peak_errors"].at is None


def pool_sample(moment: datetime, checked_out: int, waiting: int = 0) -> PoolSample:
    return PoolSample(
        moment, "json", size=5, checked_out=checked_out, max_overflow=2, waiting=waiting
    )


def test_pool_saturation_recovery_and_trend() -> None:
    values = [(4, 0), (7, 0), (7, 3), (5, 0), (7, 0)]
    samples = tuple(
        pool_sample(at(9, 40) + timedelta(seconds=10 * i), used, waiting)
        for i, (used, waiting) in enumerate(values)
    )
    ev = evidence(pools=(PoolInstance(URL, samples),))
    pool = of_kind(timeline(ev), EntryKind.POOL)
    source = "api-1.internal:8000/pool-status"
    assert [(e.at, e.source, e.event) for e in pool] == [
        (at(9, 40), source, "checked_out across 5 samples: 4 → 7 → 7 → 5 → 7 of 7 (rising)"),
        (at(9, 40, 10), source, "pool saturated: 7/7 checked out"),
        (at(9, 40, 30), source, "pool recovered: 5/7 checked out"),
        (at(9, 40, 40), source, "pool saturated: 7/7 checked out"),
    ]
    assert pool[0].until == at(9, 40, 40)


def test_long_trends_are_abbreviated_and_first_sample_saturation_is_marked() -> None:
    samples = tuple(
        pool_sample(at(9, 0) + timedelta(seconds=i), used)
        for i, used in enumerate([7, 6, 6, 7, 7, 7, 7, 3])
    )
    pool = of_kind(timeline(evidence(pools=(PoolInstance(URL, samples),))), EntryKind.POOL)
    assert pool[0].event == "checked_out across 8 samples: 7 → … (peak 7) … → 3 of 7 (falling)"
    assert pool[1].event == "pool saturated at first sample: 7/7 checked out"


def backend(pid: int, state: str, **times: object) -> Backend:
    fields: dict[str, object] = {
        "pid": pid,
        "backend_type": "client backend",
        "usename": "orders",
        "datname": "orders",
        "application_name": "api",
        "client_addr": "10.0.0.5",
        "state": state,
        "backend_start": at(9, 0),
        "xact_start": None,
        "query_start": None,
        "state_change": None,
        "wait_event_type": None,
        "wait_event": None,
        "query": "UPDATE accounts SET balance = balance - 1 WHERE id = 1",
    }
    fields.update(times)
    return Backend(**fields)  # type: ignore[arg-type]


def test_pg_stat_activity_ages_become_events() -> None:
    backends = (
        backend(
            4242,
            "idle in transaction",
            xact_start=at(9, 30),
            state_change=at(9, 30, 1),
            backend_start=at(8, 55),
        ),
        backend(4300, "idle in transaction", xact_start=at(9, 44, 50)),  # too young to be stuck
        backend(
            4400,
            "active",
            query_start=at(9, 43),
            xact_start=at(9, 43),
            query="SELECT pg_sleep(600)",
        ),
        backend(
            4500,
            "active",
            query_start=at(9, 44, 40),
            xact_start=at(9, 44, 40),
            wait_event_type="Lock",
            wait_event="transactionid",
            blocking_pids=(4242,),
        ),
        backend(4600, "active", query_start=at(9, 44, 0), backend_type="autovacuum worker"),
    )
    ev = evidence(postgres=PostgresEvidence("db", samples=(ActivitySample(NOW, backends),)))
    pg = of_kind(timeline(ev), EntryKind.POSTGRES)
    assert [(e.at, e.event, e.inferred) for e in pg] == [
        (
            at(8, 55),
            "pid 4242 (api) connected: the oldest session among those stuck at collection time",
            False,
        ),
        (
            at(9, 30),
            "pid 4242 (api) began the transaction still open at collection time (open 15m10s; "
            "root blocker of 1 lock waiter; idle in transaction; last query: UPDATE accounts "
            "SET balance = balance - 1 WHERE id = 1)",
            False,
        ),
        (
            at(9, 43),
            "pid 4400 (api) started the query still running at collection time (2m10s): "
            "SELECT pg_sleep(600)",
            False,
        ),
        (
            at(9, 44, 40),
            "pid 4500 (api) started the query now waiting for a lock (30s; waiting on "
            "transactionid, blocked by pid 4242: UPDATE accounts SET balance = balance - 1 "
            "WHERE id = 1)",
            True,
        ),
    ]
    keys = {k.name: k for k in build_key_times(read(ev), GENERATED)}
    assert keys["oldest_stuck"].at == at(9, 30)
    assert keys["oldest_stuck"].inferred is False
    assert keys["oldest_stuck"].basis.startswith("xact_start of pid 4242 (api)")


def test_many_stuck_sessions_are_summarised() -> None:
    backends = tuple(
        backend(5000 + i, "idle in transaction", xact_start=at(9, 10 + i)) for i in range(12)
    )
    ev = evidence(postgres=PostgresEvidence("db", samples=(ActivitySample(NOW, backends),)))
    transactions = [e for e in timeline(ev) if "transaction" in e.event]
    assert len(transactions) == MAX_STUCK_LISTED + 1
    assert transactions[-1].event == (
        "7 more idle transactions began between 09:15 and 09:21 and were still open at "
        "collection time"
    )
    assert transactions[-1].until == at(9, 21)


def test_holders_are_dated_sample_time_minus_age() -> None:
    sample = PoolSample(
        NOW,
        "json",
        size=5,
        checked_out=2,
        holders=(Holder("api/orders.py:41", 600.0, "worker-3"), Holder("jobs.py:9", 90.5)),
    )
    ev = evidence(pools=(PoolInstance(URL, (sample,)),))
    holders = of_kind(timeline(ev), EntryKind.HOLDER)
    assert [(e.at, e.event, e.inferred) for e in holders] == [
        (
            at(9, 35, 10),
            "checkout by api/orders.py:41 still held at collection time (held 10m00s, "
            "thread worker-3)",
            True,
        ),
        (
            NOW - timedelta(seconds=90.5),
            "checkout by jobs.py:9 still held at collection time (held 1m30s)",
            True,
        ),
    ]
    keys = {k.name: k for k in build_key_times(read(ev), GENERATED)}
    assert keys["oldest_stuck"].at == at(9, 35, 10)
    assert keys["oldest_stuck"].inferred is True


def test_failed_sources_collection_start_and_detection_are_listed() -> None:
    ev = evidence(
        sources=(
            SourceStatus(URL, "pool_status", SourceState.ERROR, "connection refused", NOW, NOW),
            SourceStatus("/var/log/app.log", "log", SourceState.OK, "10 line(s)", NOW, NOW),
        )
    )
    entries = timeline(ev, Status.UNKNOWN)
    assert [(e.at, e.kind, e.source, e.event) for e in entries] == [
        (
            NOW - timedelta(seconds=30),
            EntryKind.COLLECTION,
            "pooldoctor",
            "evidence collection started",
        ),
        (
            NOW,
            EntryKind.SOURCE,
            "api-1.internal:8000/pool-status",
            "could not collect (pool_status): connection refused",
        ),
        (GENERATED, EntryKind.DETECTION, "pooldoctor", "pooldoctor diagnosis: UNKNOWN"),
    ]


def test_timeline_is_sorted_deduplicated_and_capped() -> None:
    # 100 separate bursts (each 10 minutes apart) in one file, each listed twice.
    minutes = tuple(MinuteCount(at(0, 0) + timedelta(minutes=10 * i), 1) for i in range(100))
    event = LogEventSummary(LogEvent.POOL_TIMEOUT, 100, None, None, minutes)
    ev = evidence(logs=(log_file("/var/log/app.log", event, event),))
    entries, omitted = build_timeline(read(ev), generated_at=GENERATED, status=Status.CRITICAL)
    total = 100 + 2  # bursts + collection start + detection
    assert len(entries) == MAX_TIMELINE_ENTRIES
    assert omitted == total - MAX_TIMELINE_ENTRIES
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert len({(e.at, e.source, e.event) for e in entries}) == len(entries)
    assert entries[-1].kind is EntryKind.DETECTION
    assert any(e.kind is EntryKind.COLLECTION for e in entries)


def test_peak_minute_sums_files_and_first_error_falls_back_to_saturation() -> None:
    app = summary(LogEvent.POOL_TIMEOUT, per_minute(at(9, 31), [2, 9, 4]), at(9, 31, 3), at(9, 33))
    access = summary(LogEvent.HTTP_5XX, per_minute(at(9, 31), [1, 2, 5]), at(9, 31, 9), at(9, 33))
    ev = evidence(logs=(log_file("/l/app.log", app), log_file("/l/access.log", access)))
    keys = {k.name: k for k in build_key_times(read(ev), GENERATED)}
    assert (keys["first_error"].at, keys["first_error"].inferred) == (at(9, 31, 3), False)
    assert (keys["peak_errors"].at, keys["peak_errors"].count) == (at(9, 32), 11)
    assert "mostly QueuePool timeouts" in keys["peak_errors"].basis
    saturated = evidence(
        pools=(PoolInstance(URL, (pool_sample(at(9, 40), 3), pool_sample(at(9, 41), 7))),)
    )
    keys = {k.name: k for k in build_key_times(read(saturated), GENERATED)}
    assert (keys["first_error"].at, keys["first_error"].inferred) == (at(9, 41), True)
    assert "first pool sample found saturated" in keys["first_error"].basis
    assert keys["detection"].at == GENERATED


def test_idle_time_is_stated_when_the_transaction_worked_after_it_began() -> None:
    rotating = backend(
        7000,
        "idle in transaction",
        xact_start=at(9, 40),
        state_change=at(9, 43, 10),
        query="SELECT * FROM carts WHERE id = 3",
    )
    ev = evidence(postgres=PostgresEvidence("db", samples=(ActivitySample(NOW, (rotating,)),)))
    [entry] = [e for e in timeline(ev) if e.source == "postgres" and e.at == at(9, 40)]
    assert entry.event == (
        "pid 7000 (api) began the transaction still open at collection time (open 5m10s; "
        "idle in transaction for the last 2m00s; last query: SELECT * FROM carts WHERE id = 3)"
    )


def test_a_large_fleet_lists_saturated_instances_and_summarises_the_rest() -> None:
    def instance(n: int, used: int, waiting: int = 0) -> PoolInstance:
        samples = tuple(
            pool_sample(at(9, 40) + timedelta(seconds=10 * i), used, waiting) for i in range(3)
        )
        return PoolInstance(f"app-{n:03d}:8000 main", samples)

    pools = tuple(instance(n, 7, 2) if n == 17 else instance(n, 2 + n % 3) for n in range(40))
    pool = of_kind(timeline(evidence(pools=pools)), EntryKind.POOL)
    assert {e.source for e in pool} == {"app-017:8000 main", "fleet"}
    (fleet,) = [e for e in pool if e.source == "fleet"]
    assert fleet.event == "39 instances never saturated: checked_out 2–4 of 7"
    assert (fleet.at, fleet.until) == (at(9, 40), at(9, 40, 20))
