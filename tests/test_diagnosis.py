"""Diagnosis: ranking, status, look-alike discrimination, ownership, recency, config arithmetic."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pooldoctor.checks.registry import check_named
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.diagnosis import (
    CANCELLATION_DISCOUNT,
    DEADLOCK_DISCOUNT,
    LOCKSTEP_DISCOUNT,
    deadlock_explains_leak,
    diagnose,
    rank,
)
from pooldoctor.evidence import (
    ActivitySample,
    AppLogFacts,
    Backend,
    Evidence,
    LogEvent,
    LoggedException,
    SourceState,
    SourceStatus,
)
from pooldoctor.findings import Finding, Role, Severity, Status
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.readings import read
from tests.data.checks import cases
from tests.evidence_builders import (
    SAMPLE_TIMES,
    active,
    activity,
    ago,
    config,
    events,
    evidence,
    idle,
    log_file,
    postgres,
)

LOOK_ALIKES = {
    "connection-leak": cases.connection_leak,
    "pool-undersized": cases.pool_undersized,
    "slow-queries": cases.slow_queries,
    "idle-in-transaction": cases.idle_in_transaction,
}


def actionable(findings: Sequence[Finding]) -> set[str]:
    return {f.runbook for f in findings if f.severity is not Severity.INFO and f.role is Role.CAUSE}


@pytest.mark.parametrize("mode", sorted(LOOK_ALIKES))
def test_look_alikes_are_told_apart(mode: str) -> None:
    diagnosis = diagnose(LOOK_ALIKES[mode](), strict=True)
    assert diagnosis.findings[0].runbook == mode
    assert actionable(diagnosis.findings) & set(LOOK_ALIKES) == {mode}


def test_leak_finding_names_holders_pids_and_remedies() -> None:
    top = diagnose(cases.connection_leak(), strict=True).findings[0]
    assert "18 backends of application 'api' idle in transaction" in top.summary
    assert "oldest pid 4242 since 09:30:23Z (14m37s)" in top.summary
    assert "no progress in their transactions across all 3 samples" in top.summary
    assert "app/api/orders.py:42 in create_order holds 18 (oldest 14m37s)" in top.summary
    assert top.evidence["holders"][0]["origin"] == "app/api/orders.py:42 in create_order"
    assert top.evidence["stuck_pids"][0] == 4242
    kill = top.remediation[0]
    assert kill.startswith("Free the leaked backends now")
    assert "pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY('{4242," in kill
    assert "application_name = 'api'" in kill and "pid <> pg_backend_pid()" in kill
    assert any("idle_in_transaction_session_timeout" in step for step in top.remediation)
    assert top.evidence["app"]["application_name"] == "api"


def test_symptom_ranks_below_its_cause_and_points_to_it() -> None:
    findings = diagnose(cases.connection_leak(), strict=True).findings
    symptom = next(f for f in findings if f.role is Role.SYMPTOM)
    assert findings.index(symptom) > 0
    assert symptom.severity is Severity.CRITICAL
    assert symptom.runbook == "connection-leak"
    assert symptom.evidence["points_to"] == findings[0].id


def test_undersized_remediation_uses_littles_law() -> None:
    top = diagnose(cases.pool_undersized(), strict=True).findings[0]
    sizing = top.remediation[0]
    assert "150.0 checkouts/s x 180ms mean hold = 27.0 connections" in sizing
    assert "36 over 2 process(es): pool_size=12, max_overflow=6 each" in sizing


def test_old_pool_timeout_burst_with_healthy_pool_is_history() -> None:
    two_days_ago = ago(2 * 86400)
    burst = events(
        LogEvent.POOL_TIMEOUT, 500, last=two_days_ago, minutes=20, examples=[cases.QUEUEPOOL_LINE]
    )
    diagnosis = diagnose(replace(cases.healthy(), logs=(log_file(burst),)), strict=True)
    assert diagnosis.status is Status.OK
    history = [f for f in diagnosis.findings if f.check == "pool-exhausted"]
    assert len(history) == 1
    assert history[0].severity is Severity.INFO and history[0].confidence < 0.1


def test_recent_burst_with_recovered_pool_is_still_a_warning() -> None:
    burst = events(LogEvent.POOL_TIMEOUT, 50, last=ago(120), minutes=3)
    diagnosis = diagnose(replace(cases.healthy(), logs=(log_file(burst),)), strict=True)
    assert diagnosis.status is Status.WARNING


def test_until_moves_the_log_reference_time() -> None:
    burst = events(LogEvent.POOL_TIMEOUT, 50, last=ago(2 * 86400), minutes=3)
    base = evidence(logs=[log_file(burst)], until=ago(2 * 86400 - 60))
    assert diagnose(base, strict=True).status is Status.WARNING
    assert diagnose(replace(base, until=None), strict=True).status is Status.OK


def _with_backup_query(base: Evidence) -> Evidence:
    assert base.postgres is not None
    samples = tuple(
        replace(
            s,
            backends=(
                *s.backends,
                active(
                    31337,
                    s.at,
                    3 * 3600 + 120,
                    app="pg_dump",
                    user="backup",
                    query="COPY public.events TO stdout;",
                ),
            ),
        )
        for s in base.postgres.samples
    )
    return replace(base, postgres=replace(base.postgres, samples=samples))


def test_backup_query_holding_no_app_connection_is_not_the_root_cause() -> None:
    diagnosis = diagnose(_with_backup_query(cases.connection_leak()), strict=True)
    assert diagnosis.findings[0].runbook == "connection-leak"
    backup = [f for f in diagnosis.findings if "pg_dump" in f.summary]
    assert backup and all(f.severity is Severity.INFO for f in backup)
    assert "pid 31337 ('pg_dump', role backup)" in backup[0].summary


def test_backup_query_on_a_healthy_app_leaves_status_ok() -> None:
    diagnosis = diagnose(_with_backup_query(cases.healthy()), strict=True)
    assert diagnosis.status is Status.OK


def test_backup_holding_a_lock_the_app_waits_on_is_named() -> None:
    diagnosis = diagnose(cases.lock_contention("pg_dump", "backup"), strict=True)
    top = diagnosis.findings[0]
    assert top.runbook == "lock-contention"
    assert "root blocker pid 777 ('pg_dump', role backup, maintenance" in top.summary
    assert top.evidence["root_blockers"][0]["application_name"] == "pg_dump"
    [step] = [step for step in top.remediation if "pid 777" in step]
    assert step.startswith("The root blocker pid 777 belongs to 'pg_dump' (role backup): ask")
    assert (
        "WHERE pid = ANY('{777}'::int[]) AND application_name = 'pg_dump' AND usename = 'backup'"
    ) in step
    [alter] = [step for step in top.remediation if 'ALTER ROLE "backup" SET lock_timeout' in step]
    assert "reaches new sessions only" in alter


def test_budget_arithmetic_over_commitment_is_a_risk() -> None:
    at = SAMPLE_TIMES[-1]
    ev = evidence(
        pg=postgres(activity(at, [active(1, at, 0.01)])),
        cfg=config(workers=16, pool_size=20, max_overflow=10),
    )
    findings = diagnose(ev, strict=True).findings
    risk = next(f for f in findings if f.id.endswith(":budget"))
    assert risk.role is Role.RISK and risk.severity is Severity.WARNING
    assert "16 processes x (20+10) = 480 > 97 available" in risk.summary
    assert risk.evidence["budget"]["per_process_fit"] == 6
    assert any("floor(97 / 16) = 6 -> pool_size=4, max_overflow=2" in s for s in risk.remediation)


def test_other_clients_reduce_the_budget_and_are_named() -> None:
    found = diagnose(cases.server_max_connections(), strict=True).findings[0]
    assert "16 processes x (20+10) = 480 > 62 available" in found.summary
    others = found.evidence["budget"]["other_sessions"]
    assert others[0]["application_name"] == "worker" and others[0]["count"] == 35


def test_the_app_s_other_numbered_processes_are_not_other_clients() -> None:
    """Per-process application_names (api-1, api-2, api-3) are one fleet: its own demand."""
    at = SAMPLE_TIMES[-1]
    per_process = {1: 5, 2: 3, 3: 2}
    fleet = [
        idle(100 * n + i, ago(30), app=f"api-{n}")
        for n, sessions in per_process.items()
        for i in range(sessions)
    ]
    strangers = [
        idle(900, ago(30), app="api-2", user="reporting"),  # same name, another role
        idle(901, ago(30), app="report-7"),  # another numbered app
    ]
    ev = evidence(
        pg=postgres(activity(at, fleet + strangers), settings={"max_connections": "20"}),
        cfg=config(workers=3, pool_size=2, max_overflow=1),
    )
    budget = read(ev).budget
    assert budget is not None
    assert [s["application_name"] for s in budget.other_sessions] == ["api-2", "report-7"]
    assert budget.other_clients == 2 and budget.available == 20 - 3 - 2
    assert budget.arithmetic() == (
        "3 processes x (2+1) = 9 <= 15 available "
        "(20 max_connections - 3 superuser - 2 other clients)"
    )


def test_status_unknown_when_no_source_worked() -> None:
    ev = replace(
        evidence(),
        sources=(SourceStatus("db", "postgres", SourceState.ERROR, "could not connect"),),
    )
    assert diagnose(ev, strict=True).status is Status.UNKNOWN
    assert diagnose(evidence(), strict=True).status is Status.UNKNOWN


def _broken(_evidence: Evidence) -> Sequence[Finding]:
    raise RuntimeError("boom")


def test_a_failing_check_becomes_an_info_finding_unless_strict() -> None:
    spec = CheckSpec("broken", ("connection-leak",), "always fails", _broken)
    diagnosis = diagnose(cases.healthy(), checks=(spec,))
    assert [f.id for f in diagnosis.findings] == ["internal-error:broken"]
    assert diagnosis.findings[0].severity is Severity.INFO
    with pytest.raises(RuntimeError):
        diagnose(cases.healthy(), checks=(spec,), strict=True)


def _finding(fid: str, severity: Severity, role: Role, confidence: float) -> Finding:
    return Finding(fid, fid, severity, confidence, fid, fid, "connection-leak", role)


def test_rank_order_rule() -> None:
    ordered = rank(
        [
            _finding("info-cause", Severity.INFO, Role.CAUSE, 0.9),
            _finding("critical-risk", Severity.CRITICAL, Role.RISK, 0.9),
            _finding("critical-symptom", Severity.CRITICAL, Role.SYMPTOM, 0.9),
            _finding("warning-cause-low", Severity.WARNING, Role.CAUSE, 0.3),
            _finding("warning-cause-high", Severity.WARNING, Role.CAUSE, 0.8),
        ]
    )
    assert [f.id for f in ordered] == [
        "warning-cause-high",
        "warning-cause-low",
        "critical-symptom",
        "critical-risk",
        "info-cause",
    ]


# --- real PostgreSQL: a maintenance session's lock stalls the app ----------------------------

APP_WAITERS = 3
WAIT_DEADLINE_SECONDS = 10.0
ACTIVITY_SQL = """
SELECT now() AS at, pid, backend_type, usename, datname, application_name,
       host(client_addr) AS client_addr, state, backend_start, xact_start, query_start,
       state_change, wait_event_type, wait_event, pg_blocking_pids(pid) AS blocking, query
FROM pg_stat_activity WHERE pid <> pg_backend_pid()
"""


def _sample(conn: psycopg.Connection[dict[str, Any]]) -> ActivitySample:
    rows = conn.execute(ACTIVITY_SQL).fetchall()
    at = rows[0]["at"] if rows else datetime.now(UTC)
    own = ("blocking_pids", "query_hidden", "lock_wait_start")
    fields = [f for f in Backend.__dataclass_fields__ if f not in own]
    backends = tuple(
        Backend(**{f: r[f] for f in fields}, blocking_pids=tuple(r["blocking"] or ())) for r in rows
    )
    return ActivitySample(at=at, backends=backends)


@pytest.fixture
def locked_table(pg: TempCluster) -> Iterator[tuple[int, TempCluster]]:
    pg.execute(
        "DROP TABLE IF EXISTS pd_orders; CREATE TABLE pd_orders (id int); "
        "INSERT INTO pd_orders VALUES (1)"
    )
    holder = psycopg.connect(pg.dsn(), application_name="pg_dump", connect_timeout=5)
    holder.execute("LOCK TABLE pd_orders IN ACCESS EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid
    waiters = [
        psycopg.connect(pg.dsn(), application_name="api", connect_timeout=5, autocommit=True)
        for _ in range(APP_WAITERS)
    ]
    for conn in waiters:
        conn.execute("SET statement_timeout = '20s'")
    threads = [threading.Thread(target=_wait_on_table, args=(c,), daemon=True) for c in waiters]
    for thread in threads:
        thread.start()
    try:
        yield holder_pid, pg
    finally:
        holder.rollback()
        holder.close()
        for thread in threads:
            thread.join(timeout=WAIT_DEADLINE_SECONDS)
        for conn in waiters:
            conn.close()
        pg.execute("DROP TABLE IF EXISTS pd_orders")


def _wait_on_table(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT count(*) FROM pd_orders")


def test_real_lock_wait_names_the_maintenance_blocker(
    locked_table: tuple[int, TempCluster],
) -> None:
    holder_pid, pg = locked_table
    with psycopg.connect(
        pg.dsn(), application_name="pooldoctor", autocommit=True, row_factory=dict_row
    ) as probe:
        deadline = time.monotonic() + WAIT_DEADLINE_SECONDS
        samples: list[ActivitySample] = []
        while time.monotonic() < deadline and len(samples) < 2:
            sample = _sample(probe)
            waiting = [b for b in sample.backends if b.wait_event_type == "Lock"]
            if len(waiting) == APP_WAITERS and all(
                (sample.at - (b.state_change or sample.at)) >= timedelta(seconds=1) for b in waiting
            ):
                samples.append(sample)
            time.sleep(0.3)
    assert len(samples) == 2, "the app sessions never queued behind the lock"
    collected = samples[-1].at
    ev = replace(
        evidence(pg=postgres(*samples), now=collected),
        started_at=samples[0].at,
    )
    diagnosis = diagnose(ev, strict=True)
    top = diagnosis.findings[0]
    assert top.runbook == "lock-contention"
    assert top.evidence["root_blockers"][0]["pid"] == holder_pid
    assert top.evidence["root_blockers"][0]["application_name"] == "pg_dump"
    assert top.evidence["app_waiting"] == APP_WAITERS
    steps = " ".join(top.remediation)
    assert f"WHERE pid = ANY('{{{holder_pid}}}'::int[]) AND application_name = 'pg_dump'" in steps
    assert "ask its owner" in steps


# --- arbitration: each tie between look-alike check families, broken in one place ------------


def _by_check(findings: Sequence[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


def test_tie_a_a_deadlock_discounts_the_leak_held_by_live_threads() -> None:
    incident = cases.threadpool_deadlock()
    alone = _by_check(check_named("connection-leak").run(incident), "connection-leak")
    diagnosis = diagnose(incident, strict=True)
    leak = _by_check(diagnosis.findings, "connection-leak")
    assert deadlock_explains_leak(read(incident))
    assert leak.confidence == round(alone.confidence * DEADLOCK_DISCOUNT, 2)
    assert leak.evidence["discounted_for"] == "threadpool-deadlock signature"
    assert diagnosis.findings[0].check == "threadpool-deadlock"


def test_tie_a_finished_threads_are_a_leak_whatever_the_deadlock_says() -> None:
    incident = cases.connection_leak_finished_threads()
    assert not deadlock_explains_leak(read(incident))
    leak = _by_check(diagnose(incident, strict=True).findings, "connection-leak")
    assert "discounted_for" not in leak.evidence


def test_tie_b_async_cancellation_takes_the_leak_it_explains() -> None:
    incident = cases.async_cancellation_leak()
    alone = _by_check(check_named("connection-leak").run(incident), "connection-leak")
    diagnosis = diagnose(incident, strict=True)
    leak = _by_check(diagnosis.findings, "connection-leak")
    assert leak.confidence == round(alone.confidence * CANCELLATION_DISCOUNT, 2)
    assert diagnosis.findings[0].check == "async-cancellation-leak"
    plain = diagnose(cases.connection_leak(), strict=True)
    assert (
        _by_check(plain.findings, "connection-leak").confidence
        == _by_check(
            check_named("connection-leak").run(cases.connection_leak()), "connection-leak"
        ).confidence
    )  # no cancellation hints: no discount


def test_tie_c_streaming_holders_are_not_a_leak() -> None:
    incident = cases.streaming_holds_session()
    readings = read(incident)
    streamed = [h for h in readings.pool.holders if "stream" in h.origin]
    assert streamed and max(h.age_seconds for h in streamed) > 60  # old enough to look leaked
    assert readings.leak is None or not any(
        "stream" in str(row["origin"]) for row in readings.leak.holder_rows
    )
    checks = {f.check for f in diagnose(incident, strict=True).findings}
    assert "streaming-holds-session" in checks and "connection-leak" not in checks


def test_tie_d_sessions_the_leak_claims_are_not_idle_in_transaction() -> None:
    incident = cases.connection_leak()
    readings = read(incident)
    assert readings.leak is not None
    assert {h.pid for h in readings.leak.stuck} <= readings.leaked_pids
    checks = {f.check for f in diagnose(incident, strict=True).findings}
    assert "connection-leak" in checks and "idle-in-transaction" not in checks
    rotating = read(cases.idle_in_transaction())
    assert rotating.leaked_pids == frozenset()


def _in_lockstep(incident: Evidence, pool_timeout: float, bursts: int, size: int) -> Evidence:
    """`incident` whose app log times out `size` checkouts at once, `bursts` times, one
    pool_timeout apart (the last burst 1 s ago)."""
    timed_out = tuple(
        LoggedException(
            at=ago(1 + pool_timeout * (bursts - 1 - burst)) + timedelta(milliseconds=5 * i),
            type="sqlalchemy.exc.TimeoutError",
            message="QueuePool limit of size 20 overflow 10 reached, connection timed out",
            app_frame="/srv/app/payments.py:91 in audit",
            app_frames=("/srv/app/payments.py:88 in charge", "/srv/app/payments.py:91 in audit"),
        )
        for burst in range(bursts)
        for i in range(size)
    )
    [log] = incident.logs
    return replace(
        incident,
        logs=(replace(log, app=AppLogFacts(exceptions=timed_out)),),
        config=replace(incident.config or config(), pool_timeout=pool_timeout),
    )


def test_tie_e_transactions_that_end_only_by_timing_out_wait_on_the_pool() -> None:
    """Idle in transaction vs thread-pool deadlock: the same rotating transactions (2-9 s, a
    30-connection pool) with bursts of 20 timeouts one pool_timeout (8 s) apart are threads
    waiting for a second connection; without the bursts they stay idle in transaction."""
    plain = cases.idle_in_transaction()
    incident = _in_lockstep(plain, pool_timeout=8.0, bursts=4, size=20)
    readings = read(incident)
    assert readings.lockstep is not None
    assert readings.lockstep.bursts.sizes == (20, 20, 20, 20)
    alone = _by_check(check_named("idle-in-transaction").run(incident), "idle-in-transaction")
    diagnosis = diagnose(incident, strict=True)
    idle_tx = _by_check(diagnosis.findings, "idle-in-transaction")
    assert idle_tx.confidence == round(alone.confidence * LOCKSTEP_DISCOUNT, 2)
    assert idle_tx.evidence["discounted_for"] == "threadpool-deadlock lockstep"
    assert diagnosis.findings[0].check == "threadpool-deadlock"
    # Bursts too small for the pool, or too few, are not lockstep: no discount.
    for unlike in (
        _in_lockstep(plain, pool_timeout=8.0, bursts=4, size=5),
        _in_lockstep(plain, pool_timeout=8.0, bursts=2, size=20),
        _in_lockstep(plain, pool_timeout=3.0, bursts=4, size=20),  # 9 s transactions outlive it
    ):
        assert read(unlike).lockstep is None
        kept = _by_check(diagnose(unlike, strict=True).findings, "idle-in-transaction")
        assert "discounted_for" not in kept.evidence
    assert diagnose(plain, strict=True).findings[0].check == "idle-in-transaction"


def test_idle_in_transaction_starts_with_the_least_disruptive_step() -> None:
    top = diagnose(cases.idle_in_transaction(), strict=True).findings[0]
    assert top.runbook == "idle-in-transaction"
    first, *rest = top.remediation
    assert first.startswith("Stop the bleeding first") and "median" in first
    [backstop] = [step for step in rest if "ALTER ROLE" in step]
    assert "reaches new sessions only" in backstop
    assert not any("pg_terminate_backend" in step for step in top.remediation)
